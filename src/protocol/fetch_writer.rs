//! TEMPORARY: Fetch response via the crate encoder; replaced by the zero-copy writer.
#![allow(dead_code)]
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

#[derive(Debug, Default, Clone)]
pub struct FetchResponseParts {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopicParts>,
}
#[derive(Debug, Default, Clone)]
pub struct FetchTopicParts {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<FetchPartitionParts>,
}
#[derive(Debug, Default, Clone)]
pub struct FetchPartitionParts {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    pub preferred_read_replica: i32,
    pub current_leader: Option<(i32, i32)>,
    pub records: Vec<Bytes>,
}

pub fn encode_fetch_response(
    correlation_id: i32,
    version: i16,
    parts: &FetchResponseParts,
) -> Vec<Bytes> {
    let mut r = FetchResponse::default();
    r.error_code = parts.error_code;
    r.session_id = parts.session_id;
    r.responses = parts
        .topics
        .iter()
        .map(|t| {
            let mut x = FetchableTopicResponse::default();
            if version >= 13 {
                x.topic_id = t.topic_id
            } else {
                x.topic = TopicName(StrBytes::from_string(t.name.clone()))
            };
            x.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut d = PartitionData::default();
                    d.partition_index = p.partition_index;
                    d.error_code = p.error_code;
                    d.high_watermark = p.high_watermark;
                    d.last_stable_offset = p.last_stable_offset;
                    d.log_start_offset = p.log_start_offset;
                    d.preferred_read_replica = BrokerId(-1);
                    let mut all = BytesMut::new();
                    for b in &p.records {
                        all.extend_from_slice(b)
                    }
                    d.records = Some(all.freeze());
                    d
                })
                .collect();
            x
        })
        .collect();
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    let mut h = ResponseHeader::default();
    h.correlation_id = correlation_id;
    h.encode(&mut buf, if version >= 12 { 1 } else { 0 })
        .unwrap();
    r.encode(&mut buf, version).unwrap();
    let n = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&n.to_be_bytes());
    vec![buf.freeze()]
}
