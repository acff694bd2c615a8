//! `shoal group list|describe|reset-offsets|delete`, the
//! kafka-consumer-groups.sh subset, over FindCoordinator, ListGroups,
//! DescribeGroups, OffsetFetch, OffsetCommit, DeleteGroups and ListOffsets.
//!
//! Invariant: tables and messages have kafka-consumer-groups.sh's shape
//! (same headers, same `-` for what is unknown, notices about the group's
//! state on stderr), so scripts written against Kafka read shoal's output
//! unchanged. Offsets are only ever written by `reset-offsets --execute`,
//! and only to a group without active members.
//!
//! One file per subcommand: `list` and the shared helpers here,
//! `describe.rs`, `reset.rs` (with the `--to-datetime` parser), `delete.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

mod delete;
mod describe;
mod reset;

use super::table::{broker_ids, table, Layout};
use super::BootstrapArg;
use crate::client::cluster::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::client::coordinator::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
};
use crate::client::{
    check, topic_name, Cluster, Coordinator, KafkaError, UNKNOWN_TOPIC_OR_PARTITION,
};

/// OffsetFetch names several groups per request from this version (KIP-709).
use delete::*;
use describe::*;
use reset::*;

const OFFSET_FETCH_GROUPS_VERSION: i16 = 8;
/// The generation of a commit from outside group management (a tool).
const NO_GENERATION: i32 = -1;
/// Kafka's GROUP_ID_NOT_FOUND error code.
const GROUP_ID_NOT_FOUND: i16 = 69;
/// Protocol types kafka-consumer-groups.sh counts as consumer groups: Kafka
/// consumers, and groups that only hold offsets (`assign()` consumers).
const CONSUMER_PROTOCOL_TYPES: [&str; 2] = ["consumer", ""];
/// Group states in which no member holds partitions, so offsets may be reset.
const INACTIVE_STATES: [&str; 2] = ["Empty", "Dead"];
/// Group states of a rebalance in progress.
const REBALANCING_STATES: [&str; 2] = ["PreparingRebalance", "CompletingRebalance"];
/// What the tables print for a value that is not known.
const MISSING: &str = "-";
/// Most topics and partitions one member's assignment may name, far above
/// any real assignment; a larger count is a corrupt or hostile payload.
const ASSIGNMENT_PARTITIONS_MAX: usize = 1 << 20;

/// `shoal group ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum GroupCommand {
    /// List consumer group ids, one per line, sorted.
    List {
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Show a group's committed offsets, lag, state and members.
    Describe {
        /// The group id.
        group: String,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Reset a group's committed offsets (a dry run unless --execute).
    ResetOffsets(ResetOffsetsArgs),
    /// Delete groups that have no active members, with their offsets.
    Delete {
        /// The group ids.
        #[arg(required = true)]
        groups: Vec<String>,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
}

/// `shoal group reset-offsets G --topic T ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ResetOffsetsArgs {
    /// The group id.
    pub group: String,
    /// A topic, or TOPIC:P,P,... for some of its partitions; repeatable.
    #[arg(long = "topic", value_name = "TOPIC[:PARTITIONS]", required = true, value_parser = parse_topic_partitions)]
    pub topics: Vec<TopicPartitions>,
    #[command(flatten)]
    pub target: ResetTarget,
    /// Commit the new offsets; without it nothing changes.
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
    /// Only show the new offsets (the default).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub bootstrap: BootstrapArg,
}

/// A `--topic` argument: the topic and, if given, which partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic: String,
    /// `None`: every partition of the topic.
    pub partitions: Option<Vec<i32>>,
}

/// Where reset-offsets moves each partition to; exactly one is given.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset (moved into the log's range if outside it).
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// The first offset whose timestamp is at or after this time:
    /// YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM|-HH:MM], local time without a zone.
    #[arg(long, value_name = "DATETIME", value_parser = parse_datetime_ms)]
    pub to_datetime: Option<i64>,
    /// The committed offset moved by N (negative: back), kept in the log.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
}

/// Runs one `shoal group` command, printing to stdout (state notices to
/// stderr, as kafka-consumer-groups.sh does).
pub fn run_group(cmd: GroupCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        GroupCommand::List { bootstrap } => {
            for group in list(&bootstrap.bootstrap)? {
                writeln!(out, "{group}")?;
            }
        }
        GroupCommand::Describe { group, bootstrap } => {
            let description = describe(&bootstrap.bootstrap, &group)?;
            if let Some(notice) = state_notice(&group, &description.state) {
                eprintln!("\n{notice}");
            }
            write!(out, "{}", description.render(&group))?;
        }
        GroupCommand::ResetOffsets(args) => {
            let new_offsets = reset_offsets(&args)?;
            write!(out, "\n{}", reset_table(&args.group, &new_offsets))?;
        }
        GroupCommand::Delete { groups, bootstrap } => {
            delete(&bootstrap.bootstrap, &groups, &mut out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Consumer group ids of every broker, sorted.
fn list(bootstrap: &str) -> anyhow::Result<Vec<String>> {
    let mut cluster = Cluster::connect(bootstrap, &[])?;
    let mut groups = BTreeSet::new();
    for node_id in broker_ids(&cluster) {
        let response = cluster
            .broker(node_id)?
            .send(ListGroupsRequest::default())?;
        check(response.error_code, None, "ListGroups")?;
        groups.extend(
            response
                .groups
                .iter()
                .filter(|g| CONSUMER_PROTOCOL_TYPES.contains(&g.protocol_type.as_str()))
                .map(|g| g.group_id.0.to_string()),
        );
    }
    Ok(groups.into_iter().collect())
}

/// The notice kafka-consumer-groups.sh prints (to stderr) before the
/// tables of a group in `state`.
fn state_notice(group_id: &str, state: &str) -> Option<String> {
    if state == "Empty" {
        Some(format!(
            "Consumer group '{group_id}' has no active members."
        ))
    } else if REBALANCING_STATES.contains(&state) {
        Some(format!(
            "Warning: Consumer group '{group_id}' is rebalancing."
        ))
    } else {
        None
    }
}

fn or_missing(value: Option<i64>) -> String {
    value.map_or(MISSING.to_owned(), |v| v.to_string())
}

fn group(group_id: &str) -> GroupId {
    GroupId(StrBytes::from_string(group_id.to_owned()))
}

/// Parses `--topic TOPIC` or `--topic TOPIC:0,1,2`.
fn parse_topic_partitions(arg: &str) -> Result<TopicPartitions, String> {
    let (topic, partitions) = match arg.split_once(':') {
        None => (arg, None),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| match p.trim().parse::<i32>() {
                    Ok(p) if p >= 0 => Ok(p),
                    _ => Err(format!("bad partition {p:?} in {arg:?}")),
                })
                .collect::<Result<Vec<i32>, String>>()?;
            (topic, Some(partitions))
        }
    };
    if topic.is_empty() {
        return Err(format!("no topic in {arg:?}"));
    }
    Ok(TopicPartitions {
        topic: topic.to_owned(),
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: GroupCommand,
    }

    fn parse(args: &[&str]) -> Result<GroupCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("group").chain(args.iter().copied())).map(|c| c.cmd)
    }

    fn reset(args: &[&str]) -> ResetOffsetsArgs {
        let mut full = vec!["reset-offsets", "g"];
        full.extend_from_slice(args);
        match parse(&full).unwrap() {
            GroupCommand::ResetOffsets(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn commands_parse_with_kafka_style_options() {
        assert_eq!(
            parse(&["describe", "g", "--bootstrap", "127.0.0.1:9999"]).unwrap(),
            GroupCommand::Describe {
                group: "g".into(),
                bootstrap: BootstrapArg {
                    bootstrap: "127.0.0.1:9999".into(),
                    command_config: None,
                },
            }
        );
        assert_eq!(
            parse(&["delete", "a", "b"]).unwrap(),
            GroupCommand::Delete {
                groups: vec!["a".into(), "b".into()],
                bootstrap: BootstrapArg {
                    bootstrap: "127.0.0.1:9092".into(),
                    command_config: None,
                },
            }
        );
        assert!(parse(&["delete"]).is_err());

        let args = reset(&[
            "--topic",
            "t",
            "--topic",
            "u:0,2",
            "--shift-by",
            "-5",
            "--execute",
        ]);
        assert_eq!(
            args.topics,
            [
                TopicPartitions {
                    topic: "t".into(),
                    partitions: None
                },
                TopicPartitions {
                    topic: "u".into(),
                    partitions: Some(vec![0, 2])
                },
            ]
        );
        assert_eq!(args.target.shift_by, Some(-5));
        assert!(args.execute);
        assert!(!reset(&["--topic", "t", "--to-earliest"]).execute);
        assert_eq!(
            reset(&["--topic", "t", "--to-datetime", "2024-01-02T03:04:05Z"])
                .target
                .to_datetime,
            Some(1_704_164_645_000)
        );
    }

    #[test]
    fn reset_needs_exactly_one_target_and_a_topic() {
        let base = ["reset-offsets", "g", "--topic", "t"];
        assert!(parse(&base).is_err());
        let mut two = base.to_vec();
        two.extend(["--to-earliest", "--to-latest"]);
        assert!(parse(&two).is_err());
        assert!(parse(&["reset-offsets", "g", "--to-earliest"]).is_err());
        let mut both = base.to_vec();
        both.extend(["--to-earliest", "--execute", "--dry-run"]);
        assert!(parse(&both).is_err());
        assert!(parse(&["reset-offsets", "g", "--topic", "t:x", "--to-latest"]).is_err());
        assert!(parse(&["reset-offsets", "g", "--topic", ":1", "--to-latest"]).is_err());
    }

    #[test]
    fn datetimes_parse_with_zones_and_fractions() {
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:01.5Z"), Ok(1_500));
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:01.123456Z"), Ok(1_123));
        assert_eq!(
            parse_datetime_ms("2024-02-29T12:00:00.000+01:00"),
            parse_datetime_ms("2024-02-29T11:00:00Z")
        );
        assert_eq!(
            parse_datetime_ms("2024-02-29T12:00:00-0530"),
            parse_datetime_ms("2024-02-29T17:30:00Z")
        );
        assert_eq!(
            parse_datetime_ms("2024-02-29T12:00:00+02"),
            parse_datetime_ms("2024-02-29T10:00:00Z")
        );
        assert_eq!(
            parse_datetime_ms("2000-03-01T00:00:00Z"),
            Ok(951_868_800_000)
        );
        // Local time lies within a day of the same reading in UTC.
        let local = parse_datetime_ms("2024-06-01T12:00:00").unwrap();
        let utc = parse_datetime_ms("2024-06-01T12:00:00Z").unwrap();
        assert!((local - utc).abs() <= 86_400_000);
        for bad in [
            "",
            "2024-06-01",
            "2024-06-01 12:00:00Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-06-01T24:00:00Z",
            "2024-06-01T12:00:00.Z",
            "2024-06-01T12:00:00+1:00",
            "2024-06-01T12:00:00UTC",
            "2024-06-01T12:00:00Zjunk",
            "２０24-06-01T12:00:00Z",
        ] {
            assert!(parse_datetime_ms(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn new_offsets_follow_kafka_rules() {
        let target = |args: &[&str]| reset(&[&["--topic", "t"], args].concat()).target;
        let at = |args: &[&str], committed, at_time| {
            new_offset(&target(args), 10, 50, committed, at_time, "t-0")
        };
        assert_eq!(at(&["--to-earliest"], None, None).unwrap(), 10);
        assert_eq!(at(&["--to-latest"], None, None).unwrap(), 50);
        assert_eq!(at(&["--to-offset", "30"], None, None).unwrap(), 30);
        assert_eq!(at(&["--to-offset", "99"], None, None).unwrap(), 50);
        assert_eq!(at(&["--to-offset", "3"], None, None).unwrap(), 10);
        assert_eq!(at(&["--shift-by", "-5"], Some(20), None).unwrap(), 15);
        assert_eq!(at(&["--shift-by", "-50"], Some(20), None).unwrap(), 10);
        assert_eq!(at(&["--shift-by", "100"], Some(20), None).unwrap(), 50);
        assert_eq!(
            at(&["--shift-by", "1"], None, None)
                .unwrap_err()
                .to_string(),
            "Cannot shift offset for partition t-0 since there is no current committed offset"
        );
        let when = ["--to-datetime", "2024-01-01T00:00:00Z"];
        assert_eq!(at(&when, None, Some(17)).unwrap(), 17);
        assert_eq!(at(&when, None, None).unwrap(), 50);
    }

    fn assignment_bytes(topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Bytes {
        let mut out = 1i16.to_be_bytes().to_vec();
        out.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            out.extend((topic.len() as i16).to_be_bytes());
            out.extend(topic.as_bytes());
            out.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend(p.to_be_bytes());
            }
        }
        match user_data {
            Some(data) => {
                out.extend((data.len() as i32).to_be_bytes());
                out.extend(data);
            }
            None => out.extend((-1i32).to_be_bytes()),
        }
        Bytes::from(out)
    }

    #[test]
    fn assignments_decode_and_refuse_garbage() {
        let bytes = assignment_bytes(&[("a", &[0, 2]), ("b", &[1])], Some(b"sticky"));
        assert_eq!(
            decode_assignment(bytes.clone()).unwrap(),
            [("a".to_owned(), vec![0, 2]), ("b".to_owned(), vec![1])]
        );
        assert_eq!(decode_assignment(Bytes::new()).unwrap(), []);
        assert_eq!(decode_assignment(assignment_bytes(&[], None)).unwrap(), []);
        for cut in 1..bytes.len() - 10 {
            assert!(
                decode_assignment(bytes.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend(i32::MAX.to_be_bytes());
        assert!(decode_assignment(Bytes::from(huge)).is_err());
        let mut negative = 0i16.to_be_bytes().to_vec();
        negative.extend((-1i32).to_be_bytes());
        assert!(decode_assignment(Bytes::from(negative)).is_err());
    }

    fn member(id: &str, assignment: &[(&str, &[i32])]) -> MemberDescription {
        MemberDescription {
            member_id: id.into(),
            group_instance_id: None,
            client_id: format!("client-{id}"),
            host: "/127.0.0.1".into(),
            assignment: assignment
                .iter()
                .map(|(t, p)| (t.to_string(), p.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn describe_has_kafka_consumer_groups_shape() {
        let description = GroupDescription {
            coordinator: "127.0.0.1:9092 (1)".into(),
            state: "Stable".into(),
            protocol: "range".into(),
            members: vec![member("m1", &[("orders", &[0, 1])]), member("m2", &[])],
            partitions: vec![
                PartitionRow {
                    topic: "orders".into(),
                    partition: 0,
                    committed: Some(3),
                    log_end: Some(10),
                    owner: Some(0),
                },
                PartitionRow {
                    topic: "orders".into(),
                    partition: 1,
                    committed: None,
                    log_end: Some(4),
                    owner: Some(0),
                },
                PartitionRow {
                    topic: "gone".into(),
                    partition: 0,
                    committed: Some(7),
                    log_end: None,
                    owner: None,
                },
            ],
        };
        assert_eq!(
            description.render("g"),
            "\n\
             GROUP TOPIC  PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST       CLIENT-ID\n\
             g     orders 0         3              10             7   m1          /127.0.0.1 client-m1\n\
             g     orders 1         -              4              -   m1          /127.0.0.1 client-m1\n\
             g     gone   0         7              -              -   -           -          -\n\
             g     -      -         -              -              -   m2          /127.0.0.1 client-m2\n\
             \n\
             GROUP COORDINATOR (ID)   ASSIGNMENT-STRATEGY STATE  #MEMBERS\n\
             g     127.0.0.1:9092 (1) range               Stable 2\n\
             \n\
             GROUP CONSUMER-ID GROUP-INSTANCE-ID HOST       CLIENT-ID #PARTITIONS ASSIGNMENT\n\
             g     m1          -                 /127.0.0.1 client-m1 2           orders(0,1)\n\
             g     m2          -                 /127.0.0.1 client-m2 0           -\n"
        );
        assert_eq!(
            state_notice("g", "Empty").as_deref(),
            Some("Consumer group 'g' has no active members.")
        );
        assert_eq!(
            state_notice("g", "CompletingRebalance").as_deref(),
            Some("Warning: Consumer group 'g' is rebalancing.")
        );
        assert_eq!(state_notice("g", "Stable"), None);
    }

    #[test]
    fn empty_group_shows_offsets_and_state_only() {
        let description = GroupDescription {
            coordinator: "h:1 (1)".into(),
            state: "Empty".into(),
            protocol: String::new(),
            members: Vec::new(),
            partitions: Vec::new(),
        };
        assert_eq!(
            description.render("g"),
            "\nGROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS\n\
             g     h:1 (1)          -                   Empty 0\n"
        );
    }

    #[test]
    fn reset_and_delete_have_kafka_shapes() {
        let offsets = BTreeMap::from([(("t".to_owned(), 0), 5), (("t".to_owned(), 1), 12)]);
        assert_eq!(
            reset_table("grp", &offsets),
            "GROUP TOPIC PARTITION NEW-OFFSET\n\
             grp   t     0         5\n\
             grp   t     1         12\n"
        );
        assert_eq!(
            delete_summary(&["a", "b"], &[]),
            "Deletion of requested consumer groups ('a', 'b') was successful.\n"
        );
        assert_eq!(
            delete_summary(&["a"], &[("b", 68)]),
            "Deletion of some consumer groups failed:\n\
             * Group 'b' could not be deleted due to: NON_EMPTY_GROUP\n\
             \n\
             These consumer groups were deleted successfully: 'a'\n"
        );
    }
}
