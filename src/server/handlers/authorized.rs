//! The `authorizedOperations` bitfields of Metadata, DescribeCluster,
//! DescribeGroups and ConsumerGroupDescribe: every operation Kafka defines
//! for a resource type (`AclEntry.supportedOperations`), which
//! `server::authorize::operations` narrows to those the principal may do
//! when an authorizer is configured (without one, as Kafka, all of them).
//! A field the client did not ask for keeps the protocol's default,
//! -2147483648, as Kafka sends it.

/// Kafka's `AclOperation` codes; bit n of a bitfield is code n.
const READ: i32 = 3;
const WRITE: i32 = 4;
const CREATE: i32 = 5;
const DELETE: i32 = 6;
const ALTER: i32 = 7;
const DESCRIBE: i32 = 8;
const CLUSTER_ACTION: i32 = 9;
const DESCRIBE_CONFIGS: i32 = 10;
const ALTER_CONFIGS: i32 = 11;
const IDEMPOTENT_WRITE: i32 = 12;

/// Every operation Kafka defines on a topic.
pub const TOPIC: i32 = bits(&[
    READ,
    WRITE,
    CREATE,
    DELETE,
    ALTER,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);

/// Every operation Kafka defines on a group.
pub const GROUP: i32 = bits(&[READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS]);

/// Every operation Kafka defines on the cluster.
pub const CLUSTER: i32 = bits(&[
    CREATE,
    ALTER,
    DESCRIBE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
]);

const fn bits(operations: &[i32]) -> i32 {
    let mut field = 0;
    let mut index = 0;
    while index < operations.len() {
        field |= 1 << operations[index];
        index += 1;
    }
    field
}
