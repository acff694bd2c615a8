//! What the tests expect on the wire: Kafka's error codes and protocol
//! constants, the advertised version range of an API, names as the protocol
//! types hold them.

use std::ops::RangeInclusive;

use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::StrBytes;
use shoal::protocol::versions;

/// Partitions of every topic the test creates.
pub const PARTITIONS: i32 = 2;

/// Kafka error codes the test expects.
pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// DescribeConfigs config source DYNAMIC_TOPIC_CONFIG.
pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// DescribeConfigs resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// ListOffsets special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// KIP-1005, from ListOffsets v9.
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

pub fn versions_of(key: ApiKey) -> RangeInclusive<i16> {
    let api = versions::supported(key).unwrap_or_else(|| panic!("{key:?} not supported"));
    api.min_version..=api.max_version
}

pub fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_owned()))
}

pub fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}
