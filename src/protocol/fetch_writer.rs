//! The hand-written Fetch response encoder: the one response on the hot path.
//!
//! The output is the whole response frame as a list of chunks for a vectored
//! write. The small fixed fields (size prefix, header, offsets, error codes,
//! lengths) go into a few pieces of one `BytesMut`; every record chunk the
//! caller hands in (a buffer, or a file range the kernel sends: `chunk`)
//! appears in the list as that same chunk, so no record byte is copied,
//! decoded or re-encoded on the way out.
//!
//! Invariant: the bytes equal what Kafka (and the `kafka-protocol` crate)
//! write for the same response at the same version, 4 through 18. The tests
//! check that for every version, both by decoding and byte for byte.

use std::ops::RangeInclusive;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use super::chunk::{total_len, Chunk, FileChunk, NoFile};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// The Fetch versions this writer encodes.
pub const FETCH_VERSIONS: RangeInclusive<i16> = 4..=18;

/// First Fetch version with flexible (compact, tagged) encoding.
const FLEXIBLE_VERSION_MIN: i16 = 12;
/// First version that names topics by id instead of by name.
const TOPIC_ID_VERSION_MIN: i16 = 13;
/// First version with the top-level `NodeEndpoints` tagged field.
const NODE_ENDPOINTS_VERSION_MIN: i16 = 16;
/// Tag of `DivergingEpoch` in a partition.
const TAG_DIVERGING_EPOCH: u32 = 0;
/// Tag of `CurrentLeader` in a partition.
const TAG_CURRENT_LEADER: u32 = 1;
/// Tag of `NodeEndpoints` at the top level.
const TAG_NODE_ENDPOINTS: u32 = 0;
/// Most a varint length or count takes for a frame under 2 GiB.
const UVARINT_SIZE_MAX: usize = 5;
/// `CurrentLeader`: leader id, epoch, its own empty tagged fields.
const CURRENT_LEADER_SIZE: u32 = 4 + 4 + 1;
/// The `CurrentLeader` tagged field: tag, size, value.
const CURRENT_LEADER_TAG_SIZE: usize = 1 + 1 + CURRENT_LEADER_SIZE as usize;
/// `DivergingEpoch`: epoch, end offset, its own empty tagged fields.
const DIVERGING_EPOCH_SIZE: u32 = 4 + 8 + 1;
/// The `DivergingEpoch` tagged field: tag, size, value.
const DIVERGING_EPOCH_TAG_SIZE: usize = 1 + 1 + DIVERGING_EPOCH_SIZE as usize;
/// Fixed bytes of one partition besides its aborted transactions: index,
/// error, three offsets, two lengths, preferred replica, tag count,
/// `DivergingEpoch` and `CurrentLeader`.
const PARTITION_FIXED_SIZE_MAX: usize = 4
    + 2
    + 8 * 3
    + 2 * UVARINT_SIZE_MAX
    + 4
    + 1
    + DIVERGING_EPOCH_TAG_SIZE
    + CURRENT_LEADER_TAG_SIZE;
/// One aborted transaction: producer id, first offset, empty tagged fields.
const ABORTED_TRANSACTION_SIZE_MAX: usize = 8 + 8 + 1;
/// Fixed bytes of one topic besides its name and partitions: topic id or
/// name length, partition count, empty tagged fields.
const TOPIC_FIXED_SIZE_MAX: usize = 16 + 2 * UVARINT_SIZE_MAX + 1;
/// Fixed bytes of the response besides its topics: size prefix, header,
/// throttle, error, session, topic count, tag count, and the tag and size of
/// `NodeEndpoints`.
const RESPONSE_FIXED_SIZE_MAX: usize = 4 + 4 + 1 + 4 + 2 + 4 + 3 * UVARINT_SIZE_MAX + 1;

/// Everything a Fetch response says, with records as whole batches, in
/// memory or in files of kind `F`.
#[derive(Debug, Clone)]
pub struct FetchResponseParts<F = NoFile> {
    pub throttle_time_ms: i32,
    /// Top-level error, written from v7.
    pub error_code: i16,
    /// Fetch session id, written from v7.
    pub session_id: i32,
    pub topics: Vec<FetchTopicParts<F>>,
    /// Leaders named by `current_leader` in partitions with
    /// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH; tagged, written from
    /// v16 when not empty.
    pub node_endpoints: Vec<NodeEndpoint>,
}

impl<F> Default for FetchResponseParts<F> {
    fn default() -> Self {
        FetchResponseParts {
            throttle_time_ms: 0,
            error_code: 0,
            session_id: 0,
            topics: Vec::new(),
            node_endpoints: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FetchTopicParts<F = NoFile> {
    /// Written up to v12.
    pub name: StrBytes,
    /// Written from v13.
    pub topic_id: Uuid,
    pub partitions: Vec<FetchPartitionParts<F>>,
}

#[derive(Debug, Clone)]
pub struct FetchPartitionParts<F = NoFile> {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// Written from v5.
    pub log_start_offset: i64,
    /// `None` is written as a null array.
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// Written from v11; -1 when there is none.
    pub preferred_read_replica: i32,
    /// Tagged, written from v12 when set: a replica's fetch whose
    /// `LastFetchedEpoch` diverges from this log (KIP-320).
    pub diverging_epoch: Option<DivergingEpoch>,
    /// Tagged, written from v12 unless unknown (`None` or -1/-1, Kafka's
    /// default, which Kafka leaves out).
    pub current_leader: Option<CurrentLeader>,
    /// Whole batches in offset order, sent as they are. Empty is written as
    /// an empty record set, never null, as Kafka does.
    pub records: Vec<Chunk<F>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// The largest epoch this log has at or below the follower's last fetched
/// one, and the offset where it ends here: the follower truncates to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DivergingEpoch {
    pub epoch: i32,
    pub end_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentLeader {
    pub leader_id: i32,
    pub leader_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    pub node_id: i32,
    pub host: StrBytes,
    pub port: i32,
    pub rack: Option<StrBytes>,
}

/// Encodes the complete response frame, size prefix first, as chunks to be
/// written in order. Each record chunk of `parts` is one chunk of the output,
/// shared, not copied.
///
/// Fields that do not exist at `version` are left out. The caller keeps the
/// frame under 2 GiB (it bounds records by `fetch.max.bytes`, an `i32`).
pub fn encode_fetch_response<F: FileChunk + Clone>(
    correlation_id: i32,
    version: i16,
    parts: &FetchResponseParts<F>,
) -> Vec<Chunk<F>> {
    assert!(FETCH_VERSIONS.contains(&version), "Fetch v{version}");
    let mut writer = ChunkWriter::new(fixed_size_estimate(parts));
    let out = &mut writer.fixed;
    let flexible = version >= FLEXIBLE_VERSION_MIN;

    out.put_i32(0); // Size prefix, patched in `finish`.
    out.put_i32(correlation_id);
    if ApiKey::Fetch.response_header_version(version) >= 1 {
        out.put_u8(0); // Header tagged fields.
    }
    out.put_i32(parts.throttle_time_ms);
    if version >= 7 {
        out.put_i16(parts.error_code);
        out.put_i32(parts.session_id);
    }
    put_array_len(out, flexible, Some(parts.topics.len()));
    for topic in &parts.topics {
        let out = &mut writer.fixed;
        if version >= TOPIC_ID_VERSION_MIN {
            out.put_slice(topic.topic_id.as_bytes());
        } else {
            put_string(out, flexible, &topic.name);
        }
        put_array_len(out, flexible, Some(topic.partitions.len()));
        for partition in &topic.partitions {
            write_partition(&mut writer, version, partition);
        }
        if flexible {
            writer.fixed.put_u8(0); // Topic tagged fields.
        }
    }
    if flexible {
        let out = &mut writer.fixed;
        if version >= NODE_ENDPOINTS_VERSION_MIN && !parts.node_endpoints.is_empty() {
            out.put_u8(1);
            put_uvarint(out, TAG_NODE_ENDPOINTS);
            put_uvarint(out, to_u32(node_endpoints_size(&parts.node_endpoints)));
            put_uvarint(out, to_u32(parts.node_endpoints.len() + 1));
            for node in &parts.node_endpoints {
                out.put_i32(node.node_id);
                put_string(out, true, &node.host);
                out.put_i32(node.port);
                put_nullable_string(out, node.rack.as_deref());
                out.put_u8(0);
            }
        } else {
            out.put_u8(0);
        }
    }
    writer.finish()
}

fn write_partition<F: FileChunk + Clone>(
    writer: &mut ChunkWriter<F>,
    version: i16,
    partition: &FetchPartitionParts<F>,
) {
    let flexible = version >= FLEXIBLE_VERSION_MIN;
    let out = &mut writer.fixed;
    out.put_i32(partition.partition_index);
    out.put_i16(partition.error_code);
    out.put_i64(partition.high_watermark);
    out.put_i64(partition.last_stable_offset);
    if version >= 5 {
        out.put_i64(partition.log_start_offset);
    }
    let aborted = partition.aborted_transactions.as_deref();
    put_array_len(out, flexible, aborted.map(<[_]>::len));
    for txn in aborted.unwrap_or_default() {
        out.put_i64(txn.producer_id);
        out.put_i64(txn.first_offset);
        if flexible {
            out.put_u8(0);
        }
    }
    if version >= 11 {
        out.put_i32(partition.preferred_read_replica);
    }
    let records_size = total_len(&partition.records);
    if flexible {
        put_uvarint(out, to_u32(records_size + 1));
    } else {
        out.put_i32(to_i32(records_size));
    }
    for batch in &partition.records {
        writer.push_shared(batch);
    }
    if flexible {
        write_partition_tags(&mut writer.fixed, partition);
    }
}

/// A partition's tagged fields, in tag order.
fn write_partition_tags<F>(out: &mut BytesMut, partition: &FetchPartitionParts<F>) {
    let leader = partition
        .current_leader
        .filter(|&leader| leader != UNKNOWN_LEADER);
    let diverging = partition.diverging_epoch;
    out.put_u8(u8::from(diverging.is_some()) + u8::from(leader.is_some()));
    if let Some(diverging) = diverging {
        put_uvarint(out, TAG_DIVERGING_EPOCH);
        put_uvarint(out, DIVERGING_EPOCH_SIZE);
        out.put_i32(diverging.epoch);
        out.put_i64(diverging.end_offset);
        out.put_u8(0);
    }
    if let Some(leader) = leader {
        put_uvarint(out, TAG_CURRENT_LEADER);
        put_uvarint(out, CURRENT_LEADER_SIZE);
        out.put_i32(leader.leader_id);
        out.put_i32(leader.leader_epoch);
        out.put_u8(0);
    }
}

/// Kafka's default `CurrentLeader`, which it never writes.
const UNKNOWN_LEADER: CurrentLeader = CurrentLeader {
    leader_id: -1,
    leader_epoch: -1,
};

/// Collects the frame: fixed bytes accumulate in `fixed` and are split off
/// (sharing one allocation) each time a record buffer is pushed.
struct ChunkWriter<F> {
    fixed: BytesMut,
    /// The first fixed piece, kept mutable until the size prefix is known.
    head: Option<BytesMut>,
    /// `chunks[0]` is a placeholder for `head`.
    chunks: Vec<Chunk<F>>,
}

impl<F: FileChunk + Clone> ChunkWriter<F> {
    fn new(fixed_capacity: usize) -> Self {
        ChunkWriter {
            fixed: BytesMut::with_capacity(fixed_capacity),
            head: None,
            chunks: vec![Chunk::Memory(Bytes::new())],
        }
    }

    fn push_shared(&mut self, records: &Chunk<F>) {
        if records.is_empty() {
            return;
        }
        self.cut_fixed();
        self.chunks.push(records.clone());
    }

    fn cut_fixed(&mut self) {
        if self.fixed.is_empty() {
            return;
        }
        let piece = self.fixed.split();
        match self.head {
            None => self.head = Some(piece),
            Some(_) => self.chunks.push(Chunk::Memory(piece.freeze())),
        }
    }

    fn finish(mut self) -> Vec<Chunk<F>> {
        self.cut_fixed();
        let mut head = self.head.take().expect("the header is always written");
        // `chunks[0]` is still the empty placeholder; the prefix counts
        // everything after itself.
        let frame_size = head.len() + total_len(&self.chunks) - 4;
        head[..4].copy_from_slice(&to_i32(frame_size).to_be_bytes());
        self.chunks[0] = Chunk::Memory(head.freeze());
        self.chunks
    }
}

/// Capacity for the fixed bytes, enough that `fixed` never grows.
fn fixed_size_estimate<F>(parts: &FetchResponseParts<F>) -> usize {
    let topics: usize = parts
        .topics
        .iter()
        .map(|topic| {
            let partitions: usize = topic
                .partitions
                .iter()
                .map(|p| {
                    let aborted = p.aborted_transactions.as_ref().map_or(0, Vec::len);
                    PARTITION_FIXED_SIZE_MAX + aborted * ABORTED_TRANSACTION_SIZE_MAX
                })
                .sum();
            TOPIC_FIXED_SIZE_MAX + topic.name.len() + partitions
        })
        .sum();
    RESPONSE_FIXED_SIZE_MAX + topics + node_endpoints_size(&parts.node_endpoints)
}

/// Size of the compact `NodeEndpoints` array as written in its tagged field.
fn node_endpoints_size(nodes: &[NodeEndpoint]) -> usize {
    let mut size = uvarint_size(to_u32(nodes.len() + 1));
    for node in nodes {
        size += 4 + compact_len_size(node.host.len()) + node.host.len() + 4 + 1;
        size += node
            .rack
            .as_ref()
            .map_or(1, |rack| compact_len_size(rack.len()) + rack.len());
    }
    size
}

/// Array length: `INT32` (-1 for null) before v12, `UNSIGNED_VARINT` of
/// length + 1 (0 for null) from v12.
fn put_array_len(out: &mut BytesMut, flexible: bool, len: Option<usize>) {
    match (flexible, len) {
        (true, Some(len)) => put_uvarint(out, to_u32(len + 1)),
        (true, None) => out.put_u8(0),
        (false, Some(len)) => out.put_i32(to_i32(len)),
        (false, None) => out.put_i32(-1),
    }
}

fn put_string(out: &mut BytesMut, flexible: bool, value: &str) {
    if flexible {
        put_uvarint(out, to_u32(value.len() + 1));
    } else {
        let len = i16::try_from(value.len()).expect("a string longer than i16::MAX bytes");
        out.put_i16(len);
    }
    out.put_slice(value.as_bytes());
}

fn put_nullable_string(out: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(value) => put_string(out, true, value),
        None => out.put_u8(0),
    }
}

fn put_uvarint(out: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn uvarint_size(value: u32) -> usize {
    (32 - value.leading_zeros() as usize).max(1).div_ceil(7)
}

fn compact_len_size(len: usize) -> usize {
    uvarint_size(to_u32(len + 1))
}

fn to_i32(len: usize) -> i32 {
    i32::try_from(len).expect("a Fetch response is bounded by fetch.max.bytes, an i32")
}

fn to_u32(len: usize) -> u32 {
    u32::try_from(to_i32(len)).expect("non-negative")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::tests::sample_batch;
    use bytes::Buf;
    use kafka_protocol::messages::fetch_response as kp;
    use kafka_protocol::messages::{FetchResponse, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use kafka_protocol::records::Compression;

    fn batch(n: usize, compression: Compression) -> Bytes {
        Bytes::from(sample_batch(n, compression))
    }

    fn partition(index: i32, records: Vec<Bytes>) -> FetchPartitionParts {
        let records = records.into_iter().map(Chunk::Memory).collect();
        FetchPartitionParts {
            partition_index: index,
            error_code: 0,
            high_watermark: 1_000 + i64::from(index),
            last_stable_offset: 900 + i64::from(index),
            log_start_offset: 7,
            aborted_transactions: Some(vec![]),
            preferred_read_replica: -1,
            diverging_epoch: None,
            current_leader: None,
            records,
        }
    }

    fn topic(name: &str, partitions: Vec<FetchPartitionParts>) -> FetchTopicParts {
        FetchTopicParts {
            name: StrBytes::from_string(name.to_owned()),
            topic_id: Uuid::from_u128(
                0x0123_4567_89ab_cdef_0011_2233_4455_6677 ^ name.len() as u128,
            ),
            partitions,
        }
    }

    /// The shapes every version is checked with. Fields a version lacks are
    /// set only where `version` has them, so the crate can encode the same.
    fn shapes(version: i16) -> Vec<(&'static str, FetchResponseParts)> {
        let plain = FetchResponseParts {
            throttle_time_ms: 25,
            error_code: 0,
            session_id: if version >= 7 { 77 } else { 0 },
            topics: vec![
                topic(
                    "orders",
                    vec![
                        partition(0, vec![batch(3, Compression::None)]),
                        partition(
                            1,
                            vec![batch(2, Compression::Lz4), batch(5, Compression::Zstd)],
                        ),
                    ],
                ),
                topic(
                    "payments",
                    vec![partition(4, vec![batch(1, Compression::Gzip)])],
                ),
            ],
            node_endpoints: vec![],
        };

        let mut errors = plain.clone();
        errors.topics[0].partitions[0] = FetchPartitionParts {
            error_code: 6, // NOT_LEADER_OR_FOLLOWER
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: None,
            current_leader: (version >= 12).then_some(CurrentLeader {
                leader_id: 3,
                leader_epoch: 12,
            }),
            records: vec![],
            ..partition(0, vec![])
        };
        errors.topics[1].partitions[0].error_code = 1; // OFFSET_OUT_OF_RANGE
        errors.topics[1].partitions[0].records.clear();
        if version >= 16 {
            errors.node_endpoints = vec![
                NodeEndpoint {
                    node_id: 3,
                    host: StrBytes::from_static_str("broker-3.example"),
                    port: 9092,
                    rack: Some(StrBytes::from_static_str("rack-b")),
                },
                NodeEndpoint {
                    node_id: 4,
                    host: StrBytes::from_static_str("broker-4"),
                    port: 19092,
                    rack: None,
                },
            ];
        }

        let mut transactional = plain.clone();
        let p = &mut transactional.topics[0].partitions[1];
        p.aborted_transactions = Some(vec![
            AbortedTransaction {
                producer_id: 9_001,
                first_offset: 40,
            },
            AbortedTransaction {
                producer_id: 9_002,
                first_offset: 41,
            },
        ]);
        if version >= 11 {
            p.preferred_read_replica = 2;
        }
        if version >= 12 {
            p.current_leader = Some(UNKNOWN_LEADER);
            transactional.topics[0].partitions[0].diverging_epoch = Some(DivergingEpoch {
                epoch: 4,
                end_offset: 1_234,
            });
            transactional.topics[1].partitions[0].current_leader = Some(CurrentLeader {
                leader_id: 1,
                leader_epoch: 0,
            });
        }

        let whole_response_error = FetchResponseParts {
            throttle_time_ms: 0,
            error_code: if version >= 7 { 70 } else { 0 }, // FETCH_SESSION_ID_NOT_FOUND
            session_id: 0,
            topics: vec![],
            node_endpoints: vec![],
        };

        let many_partitions = FetchResponseParts {
            topics: (0..3)
                .map(|t| {
                    topic(
                        &"t".repeat(1 + t * 70),
                        (0..150).map(|i| partition(i, vec![])).collect(),
                    )
                })
                .collect(),
            ..FetchResponseParts::default()
        };

        vec![
            ("plain", plain),
            ("errors", errors),
            ("transactional", transactional),
            ("no topics", whole_response_error),
            ("many partitions", many_partitions),
        ]
    }

    /// The crate's message for the same response, as Kafka builds it: records
    /// are one buffer, empty but present when there are none.
    fn crate_message(parts: &FetchResponseParts) -> FetchResponse {
        let topic = |t: &FetchTopicParts| {
            kp::FetchableTopicResponse::default()
                .with_topic(t.name.clone().into())
                .with_topic_id(t.topic_id)
                .with_partitions(t.partitions.iter().map(crate_partition).collect())
        };
        let node = |n: &NodeEndpoint| {
            kp::NodeEndpoint::default()
                .with_node_id(n.node_id.into())
                .with_host(n.host.clone())
                .with_port(n.port)
                .with_rack(n.rack.clone())
        };
        FetchResponse::default()
            .with_throttle_time_ms(parts.throttle_time_ms)
            .with_error_code(parts.error_code)
            .with_session_id(parts.session_id)
            .with_responses(parts.topics.iter().map(topic).collect())
            .with_node_endpoints(parts.node_endpoints.iter().map(node).collect())
    }

    fn crate_partition(p: &FetchPartitionParts) -> kp::PartitionData {
        let leader = p.current_leader.unwrap_or(UNKNOWN_LEADER);
        let records: Vec<u8> = concat(&p.records);
        kp::PartitionData::default()
            .with_partition_index(p.partition_index)
            .with_error_code(p.error_code)
            .with_high_watermark(p.high_watermark)
            .with_last_stable_offset(p.last_stable_offset)
            .with_log_start_offset(p.log_start_offset)
            .with_aborted_transactions(p.aborted_transactions.as_ref().map(|txns| {
                txns.iter()
                    .map(|t| {
                        kp::AbortedTransaction::default()
                            .with_producer_id(t.producer_id.into())
                            .with_first_offset(t.first_offset)
                    })
                    .collect()
            }))
            .with_preferred_read_replica(p.preferred_read_replica.into())
            .with_current_leader(
                kp::LeaderIdAndEpoch::default()
                    .with_leader_id(leader.leader_id.into())
                    .with_leader_epoch(leader.leader_epoch),
            )
            .with_diverging_epoch(p.diverging_epoch.map_or_else(
                kp::EpochEndOffset::default,
                |diverging| {
                    kp::EpochEndOffset::default()
                        .with_epoch(diverging.epoch)
                        .with_end_offset(diverging.end_offset)
                },
            ))
            .with_records(Some(Bytes::from(records)))
    }

    /// What the crate writes for the whole frame: size, header, body.
    fn crate_frame(correlation_id: i32, version: i16, message: &FetchResponse) -> Vec<u8> {
        let mut body = BytesMut::new();
        let header_version = ApiKey::Fetch.response_header_version(version);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut body, header_version)
            .unwrap();
        message.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame
    }

    /// The bytes of `chunks`, all in memory here (`NoFile`).
    fn concat(chunks: &[Chunk<NoFile>]) -> Vec<u8> {
        chunks
            .iter()
            .flat_map(|c| c.memory().expect("no files here").iter().copied())
            .collect()
    }

    /// Fields the version does not carry, as the crate decodes them.
    fn as_seen_at(version: i16, mut message: FetchResponse) -> FetchResponse {
        for topic in &mut message.responses {
            if version >= TOPIC_ID_VERSION_MIN {
                topic.topic = Default::default();
            } else {
                topic.topic_id = Uuid::nil();
            }
            for p in &mut topic.partitions {
                if version < 5 {
                    p.log_start_offset = -1;
                }
                if version < FLEXIBLE_VERSION_MIN {
                    p.current_leader = Default::default();
                }
            }
        }
        if version < NODE_ENDPOINTS_VERSION_MIN {
            message.node_endpoints.clear();
        }
        message
    }

    #[test]
    fn every_version_matches_the_crate_encoder_byte_for_byte() {
        for version in FETCH_VERSIONS {
            for (shape, parts) in shapes(version) {
                let chunks = encode_fetch_response(-7_654_321, version, &parts);
                let ours = concat(&chunks);
                let message = crate_message(&parts);
                let theirs = crate_frame(-7_654_321, version, &message);
                assert_eq!(ours, theirs, "v{version} {shape}");

                let mut frame = Bytes::from(ours);
                let size = frame.get_i32();
                assert_eq!(size as usize, frame.len(), "v{version} {shape}");
                let header_version = ApiKey::Fetch.response_header_version(version);
                let header = ResponseHeader::decode(&mut frame, header_version).unwrap();
                assert_eq!(header.correlation_id, -7_654_321);
                let decoded = FetchResponse::decode(&mut frame, version).unwrap();
                assert!(frame.is_empty(), "v{version} {shape}: trailing bytes");
                assert_eq!(decoded, as_seen_at(version, message), "v{version} {shape}");
            }
        }
    }

    #[test]
    fn record_buffers_go_out_as_the_same_memory() {
        let records = [
            batch(4, Compression::None),
            batch(2, Compression::Snappy),
            batch(9, Compression::Zstd),
        ];
        let parts = FetchResponseParts {
            topics: vec![
                topic(
                    "a",
                    vec![
                        partition(0, vec![records[0].clone(), records[1].clone()]),
                        partition(1, vec![]),
                    ],
                ),
                topic("b", vec![partition(0, vec![records[2].clone()])]),
            ],
            ..FetchResponseParts::default()
        };
        for version in FETCH_VERSIONS {
            let chunks = encode_fetch_response(1, version, &parts);
            for record in &records {
                let shared = chunks
                    .iter()
                    .filter_map(Chunk::memory)
                    .filter(|c| c.as_ptr() == record.as_ptr() && c.len() == record.len())
                    .count();
                assert_eq!(shared, 1, "v{version}");
            }
            assert!(chunks.iter().all(|c| !c.is_empty()), "v{version}");
        }
    }

    #[test]
    fn size_prefix_counts_every_chunk_after_it() {
        for version in FETCH_VERSIONS {
            for (shape, parts) in shapes(version) {
                let chunks = encode_fetch_response(9, version, &parts);
                let total = total_len(&chunks);
                let head = chunks[0].memory().expect("the head is in memory");
                let prefix = i32::from_be_bytes(head[..4].try_into().unwrap());
                assert_eq!(prefix as usize, total - 4, "v{version} {shape}");
            }
        }
    }

    #[test]
    fn estimate_is_enough_for_the_fixed_bytes() {
        for version in FETCH_VERSIONS {
            for (shape, parts) in shapes(version) {
                let chunks = encode_fetch_response(9, version, &parts);
                let records: usize = parts
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .flat_map(|p| &p.records)
                    .map(Chunk::len)
                    .sum();
                let fixed = total_len(&chunks) - records;
                assert!(fixed <= fixed_size_estimate(&parts), "v{version} {shape}");
            }
        }
    }

    #[test]
    fn every_supported_fetch_version_is_encodable() {
        let fetch = crate::protocol::versions::supported(ApiKey::Fetch).unwrap();
        assert!(FETCH_VERSIONS.contains(&fetch.min_version));
        assert!(FETCH_VERSIONS.contains(&fetch.max_version));
    }

    #[test]
    fn varints_match_their_sizes() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u32::MAX,
        ] {
            let mut out = BytesMut::new();
            put_uvarint(&mut out, value);
            assert_eq!(out.len(), uvarint_size(value), "{value}");
        }
    }
}
