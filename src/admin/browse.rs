//! Record browsing for the console: a page of one partition's records
//! from an offset, a timestamp, the earliest or the last ones, read from
//! the partition's owner shard as a consumer's Fetch reads it (below the
//! high watermark, read_uncommitted), and decoded here on the admin shard.
//!
//! Invariant: bounded. One ListOffsets and one Fetch to the owner shard
//! per page; at most `READ_BYTES_MAX` of batches read, `RECORDS_MAX`
//! records answered, each key, value and header value cut at
//! `SHOWN_BYTES_MAX`: a page's answer stays under about 1 MiB of JSON.

use std::rc::Rc;

use base64::Engine;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use serde_json::{json, Value};

use crate::log::Chunk;
use crate::protocol::batch::{self, BatchHeader};
use crate::protocol::chunk::FileChunk;
use crate::shard::messages::{
    FetchOutcome, FetchPart, ListIsolation, ShardReply, ShardRequest, TopicPartition,
};
use crate::shard::Shard;

/// Records on one page at most.
pub const RECORDS_MAX: usize = 100;
/// Records on a page when the console does not say.
const RECORDS_DEFAULT: usize = 20;
/// Batch bytes read for one page: a fetch answers at least the first
/// whole batch, so a batch larger than this is cut and not shown.
pub const READ_BYTES_MAX: usize = 1 << 20;
/// Bytes shown of each key, value and header value; the rest is cut (the
/// answer gives the whole length).
pub const SHOWN_BYTES_MAX: usize = 2 * 1024;
/// ListOffsets' special timestamps (Kafka's `EARLIEST_TIMESTAMP`,
/// `LATEST_TIMESTAMP`).
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Offset(i64),
    /// The first record with a timestamp at or after this (ms).
    Timestamp(i64),
    Earliest,
    /// The page's worth of records before the high watermark.
    Latest,
}

/// What the console asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub topic: String,
    pub partition: i32,
    pub start: Start,
    pub limit: usize,
}

impl Query {
    /// `topic=t&partition=0` with one of `offset=N`, `timestamp=MS`,
    /// `from=earliest|latest` (default: latest), and `limit=N`.
    pub fn parse(pairs: &[(String, String)]) -> Result<Query, String> {
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.trim())
                .filter(|value| !value.is_empty())
        };
        let number = |name: &str| -> Result<Option<i64>, String> {
            value(name)
                .map(|text| {
                    text.parse::<i64>()
                        .map_err(|_| format!("{name}={text:?} is not a number"))
                })
                .transpose()
        };
        let topic = value("topic").ok_or("expected ?topic=<name>&partition=<n>")?;
        let partition = number("partition")?.unwrap_or(0);
        let partition = i32::try_from(partition).map_err(|_| "partition out of range")?;
        let start = match (number("offset")?, number("timestamp")?, value("from")) {
            (Some(offset), None, None) if offset >= 0 => Start::Offset(offset),
            (None, Some(timestamp), None) if timestamp >= 0 => Start::Timestamp(timestamp),
            (None, None, Some("earliest")) => Start::Earliest,
            (None, None, Some("latest") | None) => Start::Latest,
            _ => return Err("give one of offset=<n>, timestamp=<ms>, from=earliest|latest".into()),
        };
        let limit = number("limit")?.unwrap_or(RECORDS_DEFAULT as i64);
        let limit = usize::try_from(limit).unwrap_or(0).clamp(1, RECORDS_MAX);
        Ok(Query {
            topic: topic.to_string(),
            partition,
            start,
            limit,
        })
    }
}

/// Why a page has no records: the HTTP status and the reason.
pub type Refusal = (u16, String);

/// A page of records as JSON: keys, values and header values in base64
/// (the console shows them as text, JSON or hex).
pub async fn page(shard: &Rc<Shard>, query: &Query) -> Result<Value, Refusal> {
    let view = shard.view();
    let meta = view
        .topic(&query.topic)
        .filter(|meta| (0..meta.partitions).contains(&query.partition))
        .ok_or_else(|| {
            (
                404,
                format!("no partition {}-{}", query.topic, query.partition),
            )
        })?;
    let owner = meta.owner(query.partition, shard.count());
    let partition = TopicPartition::new(&query.topic, query.partition);
    let offset = start_offset(shard, owner, &partition, query).await?;
    let outcome = fetch(shard, owner, &partition, offset).await?;
    let bytes = read_chunks(&outcome.records).await?;
    let records = decode(&bytes, offset, query.limit)?;
    let next_offset = records
        .last()
        .and_then(|record| record["offset"].as_i64())
        .map_or(offset, |last| last + 1);
    Ok(json!({
        "topic": query.topic,
        "partition": query.partition,
        "offset": offset,
        "next_offset": next_offset,
        "high_watermark": outcome.high_watermark,
        "log_start_offset": outcome.log_start_offset,
        "records": records,
    }))
}

/// The offset a page starts at: the query's, or what ListOffsets answers
/// for its timestamp (the high watermark when no record is that recent).
async fn start_offset(
    shard: &Rc<Shard>,
    owner: usize,
    partition: &TopicPartition,
    query: &Query,
) -> Result<i64, Refusal> {
    let timestamps = match query.start {
        Start::Offset(offset) => return Ok(offset),
        Start::Timestamp(timestamp) => vec![timestamp, LATEST],
        Start::Earliest => vec![EARLIEST],
        Start::Latest => vec![EARLIEST, LATEST],
    };
    let parts = timestamps
        .iter()
        .map(|&timestamp| (partition.clone(), (timestamp, ListIsolation::HighWatermark)))
        .collect();
    let listed = match shard.call(owner, ShardRequest::ListOffsets(parts)).await {
        ShardReply::ListOffsets(listed) if listed.len() == timestamps.len() => listed,
        other => return Err(kafka_refusal(other.into_error().code)),
    };
    let offsets = listed
        .into_iter()
        .map(|answer| answer.map(|listed| listed.offset))
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|error| kafka_refusal(error.code))?;
    Ok(match (query.start, offsets.as_slice()) {
        (Start::Timestamp(_), &[found, high_watermark]) if found < 0 => high_watermark,
        (Start::Latest, &[earliest, latest]) => (latest - query.limit as i64).max(earliest),
        (_, offsets) => offsets[0],
    })
}

async fn fetch(
    shard: &Rc<Shard>,
    owner: usize,
    partition: &TopicPartition,
    offset: i64,
) -> Result<FetchOutcome, Refusal> {
    let part = FetchPart {
        partition: partition.clone(),
        offset,
        max_bytes: READ_BYTES_MAX,
        read_committed: false,
        replica: None,
    };
    let outcome = match shard.call(owner, ShardRequest::Fetch(vec![part])).await {
        ShardReply::Fetch(mut outcomes) if outcomes.len() == 1 => outcomes.remove(0),
        other => return Err(kafka_refusal(other.into_error().code)),
    };
    match outcome.error_code {
        0 => Ok(outcome),
        code => Err(kafka_refusal(code)),
    }
}

/// A Kafka error as the console shows it: NOT_LEADER_OR_FOLLOWER and the
/// like are the broker's answer, not the console's fault.
fn kafka_refusal(code: i16) -> Refusal {
    let name = ResponseError::try_from_code(code).map_or_else(
        || format!("error code {code}"),
        |error| format!("{error:?}"),
    );
    (409, format!("the partition answered {name}"))
}

/// The fetched batches' bytes, at most `READ_BYTES_MAX` of them: what is
/// in memory copied, file ranges read through the admin shard's io_uring.
async fn read_chunks(chunks: &[Chunk]) -> Result<Bytes, Refusal> {
    let mut bytes = Vec::new();
    for chunk in chunks {
        let room = READ_BYTES_MAX - bytes.len();
        if room == 0 {
            break;
        }
        match chunk {
            Chunk::Memory(memory) => bytes.extend_from_slice(&memory[..memory.len().min(room)]),
            Chunk::File(range) => {
                let read = range
                    .read(0, range.byte_len().min(room))
                    .await
                    .map_err(|error| (500, format!("reading the log: {error}")))?;
                bytes.extend_from_slice(&read);
            }
        }
    }
    assert!(bytes.len() <= READ_BYTES_MAX);
    Ok(Bytes::from(bytes))
}

/// The records of the whole batches in `bytes` from `from_offset`, at
/// most `limit`, as JSON; control batches (transaction markers) left out.
pub fn decode(bytes: &Bytes, from_offset: i64, limit: usize) -> Result<Vec<Value>, Refusal> {
    let mut records = Vec::new();
    let mut position = 0;
    while records.len() < limit {
        let rest = &bytes[position..];
        let size = match batch::framed_size(rest) {
            Ok(size) => size,
            Err(batch::BatchError::Truncated) if position == 0 && !rest.is_empty() => {
                return Err((
                    413,
                    format!("the batch at offset {from_offset} is over the console's {READ_BYTES_MAX} bytes"),
                ))
            }
            Err(batch::BatchError::Truncated) => break,
            Err(error) => return Err((500, format!("malformed batch at byte {position}: {error:?}"))),
        };
        let control = BatchHeader::view(rest).is_some_and(|header| header.is_control());
        let mut batch_bytes = bytes.slice(position..position + size);
        position += size;
        if control {
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut batch_bytes).map_err(|error| {
            (
                500,
                format!("undecodable batch at byte {position}: {error}"),
            )
        })?;
        let wanted = set.records.into_iter().filter(|r| r.offset >= from_offset);
        records.extend(wanted.take(limit - records.len()).map(|record| {
            let headers: Vec<Value> = record
                .headers
                .iter()
                .map(|(key, value)| json!({ "key": key.to_string(), "value": shown(value.as_ref()) }))
                .collect();
            json!({
                "offset": record.offset,
                "timestamp": record.timestamp,
                "key": shown(record.key.as_ref()),
                "value": shown(record.value.as_ref()),
                "headers": headers,
            })
        }));
    }
    assert!(records.len() <= limit);
    Ok(records)
}

/// Bytes as the console gets them: null, or their length and the first
/// `SHOWN_BYTES_MAX` of them in base64.
fn shown(bytes: Option<&Bytes>) -> Value {
    let Some(bytes) = bytes else {
        return Value::Null;
    };
    let cut = &bytes[..bytes.len().min(SHOWN_BYTES_MAX)];
    json!({
        "length": bytes.len(),
        "base64": base64::engine::general_purpose::STANDARD.encode(cut),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn pairs(query: &str) -> Vec<(String, String)> {
        crate::admin::http::query_pairs(query)
    }

    #[test]
    fn queries_name_one_start() {
        let parsed = Query::parse(&pairs("topic=t&partition=2&offset=5&limit=1000")).expect("ok");
        assert_eq!(parsed.start, Start::Offset(5));
        assert_eq!((parsed.partition, parsed.limit), (2, RECORDS_MAX));
        let parsed = Query::parse(&pairs("topic=t&timestamp=1700000000000")).expect("ok");
        assert_eq!(parsed.start, Start::Timestamp(1_700_000_000_000));
        assert_eq!(parsed.limit, RECORDS_DEFAULT);
        assert_eq!(
            Query::parse(&pairs("topic=t")).expect("ok").start,
            Start::Latest
        );
        let earliest = Query::parse(&pairs("topic=t&from=earliest&offset=")).expect("ok");
        assert_eq!(earliest.start, Start::Earliest);
        for bad in [
            "partition=0",
            "topic=t&offset=1&timestamp=2",
            "topic=t&offset=-1",
            "topic=t&offset=x",
            "topic=t&from=middle",
        ] {
            assert!(Query::parse(&pairs(bad)).is_err(), "{bad}");
        }
    }

    /// One batch of `count` records based at `base`: keys on even
    /// offsets, a header on each, offset 3's value over `SHOWN_BYTES_MAX`.
    fn batch(base: i64, count: i64) -> Vec<u8> {
        let records: Vec<Record> = (base..base + count)
            .map(|offset| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset,
                // Stepping with the offset keeps the records in one batch.
                sequence: offset as i32,
                timestamp: 1_000 + offset,
                key: (offset % 2 == 0).then(|| Bytes::from(format!("k{offset}"))),
                value: Some(Bytes::from(vec![
                    b'v';
                    if offset == 3 {
                        SHOWN_BYTES_MAX + 7
                    } else {
                        3
                    }
                ])),
                headers: [(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"x")),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::Lz4,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encodes");
        buf.to_vec()
    }

    #[test]
    fn a_page_holds_whole_batches_from_its_offset_within_its_limit() {
        let mut bytes = batch(0, 4);
        bytes.extend_from_slice(&batch(4, 4));
        let bytes = Bytes::from(bytes);
        let page = decode(&bytes, 2, 3).expect("decodes");
        let offsets: Vec<i64> = page
            .iter()
            .map(|r| r["offset"].as_i64().expect("offset"))
            .collect();
        assert_eq!(offsets, [2, 3, 4]);
        assert_eq!(page[0]["key"]["base64"], "azI=");
        assert_eq!(page[0]["timestamp"], 1_002);
        assert_eq!(
            page[0]["headers"],
            json!([{ "key": "h", "value": { "length": 1, "base64": "eA==" } }])
        );
        assert_eq!(page[1]["key"], Value::Null);
        assert_eq!(page[1]["value"]["length"], SHOWN_BYTES_MAX + 7);
        let shown = page[1]["value"]["base64"].as_str().expect("text");
        assert_eq!(
            shown.len(),
            SHOWN_BYTES_MAX.div_ceil(3) * 4,
            "cut at SHOWN_BYTES_MAX"
        );
        // A batch cut at the end of the read is left for the next page.
        let cut = bytes.slice(..bytes.len() - 1);
        assert_eq!(decode(&cut, 0, RECORDS_MAX).expect("decodes").len(), 4);
        // The first batch cut: too large to show.
        assert_eq!(decode(&bytes.slice(..10), 0, 1).map_err(|e| e.0), Err(413));
    }
}
