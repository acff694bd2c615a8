//! `shoal group list|describe|reset-offsets|delete`, the
//! kafka-consumer-groups.sh subset, over FindCoordinator, ListGroups,
//! DescribeGroups, OffsetFetch, OffsetCommit, DeleteGroups and ListOffsets.
//!
//! Invariant: tables and messages have kafka-consumer-groups.sh's shape
//! (same headers, same `-` for what is unknown, notices about the group's
//! state on stderr), so scripts written against Kafka read shoal's output
//! unchanged. Offsets are only ever written by `reset-offsets --execute`,
//! and only to a group without active members.

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

use super::BootstrapArg;
use crate::client::cluster::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::client::coordinator::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
};
use crate::client::{
    check, topic_name, Cluster, Coordinator, KafkaError, UNKNOWN_TOPIC_OR_PARTITION,
};

/// OffsetFetch names several groups per request from this version (KIP-709).
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
    let brokers: Vec<_> = cluster
        .metadata()
        .brokers
        .iter()
        .map(|b| b.node_id)
        .collect();
    let mut groups = BTreeSet::new();
    for node_id in brokers {
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

/// Everything `describe` shows about a group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupDescription {
    coordinator: String,
    state: String,
    protocol: String,
    members: Vec<MemberDescription>,
    /// One row per partition that is committed or assigned.
    partitions: Vec<PartitionRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberDescription {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    host: String,
    /// (topic, partitions), as the member's assignment lists them.
    assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    /// Index into `members` of the member the partition is assigned to.
    owner: Option<usize>,
}

fn describe(bootstrap: &str, group_id: &str) -> anyhow::Result<GroupDescription> {
    let (coordinator, described, committed) = Coordinator::call(bootstrap, group_id, |c| {
        let described = describe_group(c, group_id)?;
        let committed = committed_offsets(c, group_id, None)?;
        let addr = format!("{} ({})", c.conn.addr(), c.node_id.0);
        Ok((addr, described, committed))
    })?;
    let state = described.group_state.to_string();
    if state == "Dead" && committed.is_empty() {
        bail!(KafkaError {
            code: GROUP_ID_NOT_FOUND,
            message: format!("Consumer group '{group_id}' does not exist."),
        });
    }
    let members = described
        .members
        .iter()
        .map(|m| {
            Ok(MemberDescription {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|id| id.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: decode_assignment(m.member_assignment.clone())
                    .with_context(|| format!("assignment of member {}", m.member_id))?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut rows: BTreeMap<(String, i32), PartitionRow> = BTreeMap::new();
    for ((topic, partition), offset) in &committed {
        partition_row(&mut rows, topic, *partition).committed = Some(*offset);
    }
    for (index, member) in members.iter().enumerate() {
        for (topic, partitions) in &member.assignment {
            for &partition in partitions {
                partition_row(&mut rows, topic, partition).owner = Some(index);
            }
        }
    }

    let topics: BTreeSet<&str> = rows.keys().map(|(topic, _)| topic.as_str()).collect();
    let log_ends = log_end_offsets(bootstrap, &topics)?;
    let mut partitions: Vec<PartitionRow> = rows.into_values().collect();
    for row in &mut partitions {
        row.log_end = log_ends.get(&(row.topic.clone(), row.partition)).copied();
    }
    Ok(GroupDescription {
        coordinator,
        state,
        protocol: described.protocol_data.to_string(),
        members,
        partitions,
    })
}

/// The row of `topic`/`partition`, added empty if it is not there yet.
fn partition_row<'a>(
    rows: &'a mut BTreeMap<(String, i32), PartitionRow>,
    topic: &str,
    partition: i32,
) -> &'a mut PartitionRow {
    rows.entry((topic.to_owned(), partition))
        .or_insert_with(|| PartitionRow {
            topic: topic.to_owned(),
            partition,
            committed: None,
            log_end: None,
            owner: None,
        })
}

/// Log end offsets of every partition of `topics` that still exists; a
/// deleted topic's partitions are left out (shown as `-`).
fn log_end_offsets(
    bootstrap: &str,
    topics: &BTreeSet<&str>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut offsets = BTreeMap::new();
    if topics.is_empty() {
        return Ok(offsets);
    }
    let names: Vec<&str> = topics.iter().copied().collect();
    let mut cluster = Cluster::connect(bootstrap, &names)?;
    for topic in names {
        let Ok(meta) = cluster.topic(topic) else {
            continue;
        };
        let partitions: Vec<i32> = meta.partitions.iter().map(|p| p.partition_index).collect();
        for (partition, offset) in cluster.list_offsets(topic, &partitions, LATEST_TIMESTAMP)? {
            if let Some(offset) = offset {
                offsets.insert((topic.to_owned(), partition), offset);
            }
        }
    }
    Ok(offsets)
}

/// The group as DescribeGroups shows it, or its error.
fn describe_group(c: &mut Coordinator, group_id: &str) -> anyhow::Result<DescribedGroup> {
    let response = c
        .conn
        .send(DescribeGroupsRequest::default().with_groups(vec![group(group_id)]))?;
    let described = response
        .groups
        .into_iter()
        .find(|g| g.group_id.0.as_str() == group_id)
        .ok_or_else(|| anyhow!("DescribeGroups response does not mention group {group_id}"))?;
    // DescribeGroups v6 (KIP-1043) says GROUP_ID_NOT_FOUND where older
    // versions describe the group as Dead; the callers handle Dead.
    if described.error_code == GROUP_ID_NOT_FOUND {
        return Ok(DescribedGroup::default()
            .with_group_id(described.group_id)
            .with_group_state("Dead".into()));
    }
    check(
        described.error_code,
        described.error_message.as_deref(),
        &format!("group {group_id}"),
    )?;
    Ok(described)
}

/// The group's committed offsets, for `partitions` or (`None`) all of them;
/// partitions without one are left out.
fn committed_offsets(
    c: &mut Coordinator,
    group_id: &str,
    partitions: Option<&BTreeMap<String, Vec<i32>>>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let version = c.conn.require_version(ApiKey::OffsetFetch)?;
    let context = format!("offsets of group {group_id}");
    // (topic, partition, committed offset, error code) from either shape.
    let mut answers: Vec<(String, i32, i64, i16)> = Vec::new();
    if version >= OFFSET_FETCH_GROUPS_VERSION {
        let topics = partitions.map(|wanted| {
            wanted
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        let request =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group(group_id))
                .with_topics(topics)]);
        let response = c.conn.send_version(request, version)?;
        let answer = response
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == group_id)
            .ok_or_else(|| anyhow!("OffsetFetch response does not mention group {group_id}"))?;
        check(answer.error_code, None, &context)?;
        for topic in &answer.topics {
            answers.extend(topic.partitions.iter().map(|p| {
                let name = topic.name.0.to_string();
                (name, p.partition_index, p.committed_offset, p.error_code)
            }));
        }
    } else {
        let topics = partitions.map(|wanted| {
            wanted
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        let request = OffsetFetchRequest::default()
            .with_group_id(group(group_id))
            .with_topics(topics);
        let response = c.conn.send_version(request, version)?;
        check(response.error_code, None, &context)?;
        for topic in &response.topics {
            answers.extend(topic.partitions.iter().map(|p| {
                let name = topic.name.0.to_string();
                (name, p.partition_index, p.committed_offset, p.error_code)
            }));
        }
    }
    let mut offsets = BTreeMap::new();
    for (topic, partition, offset, error_code) in answers {
        check(error_code, None, &format!("{context}: {topic}-{partition}"))?;
        // -1: nothing committed for this partition.
        if offset >= 0 {
            offsets.insert((topic, partition), offset);
        }
    }
    Ok(offsets)
}

impl GroupDescription {
    /// kafka-consumer-groups.sh `--describe` (offsets), then `--state`, then
    /// `--members --verbose`, each table after a blank line.
    fn render(&self, group_id: &str) -> String {
        let mut out = String::new();
        let rows: Vec<Vec<String>> = self
            .partitions
            .iter()
            .map(|row| {
                let owner = row.owner.and_then(|index| self.members.get(index));
                vec![
                    group_id.to_owned(),
                    row.topic.clone(),
                    row.partition.to_string(),
                    or_missing(row.committed),
                    or_missing(row.log_end),
                    or_missing(row.log_end.zip(row.committed).map(|(end, at)| end - at)),
                    owner.map_or(MISSING.to_owned(), |m| m.member_id.clone()),
                    owner.map_or(MISSING.to_owned(), |m| m.host.clone()),
                    owner.map_or(MISSING.to_owned(), |m| m.client_id.clone()),
                ]
            })
            .chain(
                self.members
                    .iter()
                    .filter(|m| m.assignment.iter().all(|(_, p)| p.is_empty()))
                    .map(|m| {
                        let mut row = vec![group_id.to_owned()];
                        row.extend([MISSING; 5].map(str::to_owned));
                        row.extend([m.member_id.clone(), m.host.clone(), m.client_id.clone()]);
                        row
                    }),
            )
            .collect();
        if !rows.is_empty() {
            out.push('\n');
            out.push_str(&table(
                &[
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ],
                &rows,
            ));
        }
        out.push('\n');
        out.push_str(&table(
            &[
                "GROUP",
                "COORDINATOR (ID)",
                "ASSIGNMENT-STRATEGY",
                "STATE",
                "#MEMBERS",
            ],
            &[vec![
                group_id.to_owned(),
                self.coordinator.clone(),
                if self.protocol.is_empty() {
                    MISSING.to_owned()
                } else {
                    self.protocol.clone()
                },
                self.state.clone(),
                self.members.len().to_string(),
            ]],
        ));
        if !self.members.is_empty() {
            let rows: Vec<Vec<String>> = self
                .members
                .iter()
                .map(|m| {
                    let count: usize = m.assignment.iter().map(|(_, p)| p.len()).sum();
                    vec![
                        group_id.to_owned(),
                        m.member_id.clone(),
                        m.group_instance_id
                            .clone()
                            .unwrap_or_else(|| MISSING.to_owned()),
                        m.host.clone(),
                        m.client_id.clone(),
                        count.to_string(),
                        assignment_text(&m.assignment),
                    ]
                })
                .collect();
            out.push('\n');
            out.push_str(&table(
                &[
                    "GROUP",
                    "CONSUMER-ID",
                    "GROUP-INSTANCE-ID",
                    "HOST",
                    "CLIENT-ID",
                    "#PARTITIONS",
                    "ASSIGNMENT",
                ],
                &rows,
            ));
        }
        out
    }
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

/// An assignment as `--members --verbose` prints it: `t1(0,1),t2(3)`, or
/// `-` when empty.
fn assignment_text(assignment: &[(String, Vec<i32>)]) -> String {
    let parts: Vec<String> = assignment
        .iter()
        .filter(|(_, partitions)| !partitions.is_empty())
        .map(|(topic, partitions)| {
            let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}({})", list.join(","))
        })
        .collect();
    if parts.is_empty() {
        MISSING.to_owned()
    } else {
        parts.join(",")
    }
}

fn or_missing(value: Option<i64>) -> String {
    value.map_or(MISSING.to_owned(), |v| v.to_string())
}

/// Left-aligned columns, each as wide as its widest cell, one space apart;
/// the last column is not padded. One line per row, header first.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.zip(&widths).enumerate() {
            if index + 1 == widths.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$} "));
            }
        }
        text.push('\n');
        text
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Decodes a ConsumerProtocolAssignment (every version starts with
/// `version: int16, assigned_partitions: [topic: string, partitions:
/// [int32]]`, then user data, which is ignored). Empty bytes (no
/// assignment yet) are an empty assignment.
fn decode_assignment(mut bytes: Bytes) -> anyhow::Result<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let need = |bytes: &Bytes, n: usize| {
        if bytes.remaining() < n {
            bail!("assignment truncated");
        }
        Ok(())
    };
    let count = |bytes: &mut Bytes| -> anyhow::Result<usize> {
        need(bytes, 4)?;
        let count = bytes.get_i32();
        let count = usize::try_from(count).map_err(|_| anyhow!("negative array length"))?;
        if count > ASSIGNMENT_PARTITIONS_MAX {
            bail!("array of {count} entries exceeds {ASSIGNMENT_PARTITIONS_MAX}");
        }
        Ok(count)
    };
    need(&bytes, 2)?;
    let _version = bytes.get_i16();
    let topics = count(&mut bytes)?;
    let mut assignment = Vec::new();
    for _ in 0..topics {
        need(&bytes, 2)?;
        let length = usize::try_from(bytes.get_i16()).map_err(|_| anyhow!("null topic name"))?;
        need(&bytes, length)?;
        let name = String::from_utf8(bytes.split_to(length).to_vec())
            .context("topic name is not UTF-8")?;
        let partitions = count(&mut bytes)?;
        need(&bytes, partitions * 4)?;
        let partitions = (0..partitions).map(|_| bytes.get_i32()).collect();
        assignment.push((name, partitions));
    }
    Ok(assignment)
}

/// Computes (and with `--execute` commits) the new offsets, per
/// (topic, partition).
fn reset_offsets(args: &ResetOffsetsArgs) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let bootstrap = &args.bootstrap.bootstrap;
    let group_id = &args.group;
    let names: Vec<&str> = args.topics.iter().map(|t| t.topic.as_str()).collect();
    let mut cluster = Cluster::connect(bootstrap, &names)?;
    let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for spec in &args.topics {
        let existing: Vec<i32> = cluster
            .topic(&spec.topic)?
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        let partitions = match &spec.partitions {
            None => existing,
            Some(asked) => {
                if let Some(missing) = asked.iter().find(|p| !existing.contains(p)) {
                    bail!(KafkaError {
                        code: UNKNOWN_TOPIC_OR_PARTITION,
                        message: format!("{}-{missing}: no such partition", spec.topic),
                    });
                }
                asked.clone()
            }
        };
        let entry = wanted.entry(spec.topic.clone()).or_default();
        entry.extend(partitions);
        entry.sort_unstable();
        entry.dedup();
    }

    Coordinator::call(bootstrap, group_id, |c| {
        let state = describe_group(c, group_id)?.group_state.to_string();
        if !INACTIVE_STATES.contains(&state.as_str()) {
            bail!(
                "Assignments can only be reset if the group '{group_id}' is inactive, \
                 but the current state is {state}."
            );
        }
        let committed = match args.target.shift_by {
            Some(_) => committed_offsets(c, group_id, Some(&wanted))?,
            None => BTreeMap::new(),
        };
        let mut new_offsets = BTreeMap::new();
        for (topic, partitions) in &wanted {
            let earliest = cluster.list_offsets(topic, partitions, EARLIEST_TIMESTAMP)?;
            let latest = cluster.list_offsets(topic, partitions, LATEST_TIMESTAMP)?;
            let by_time = match args.target.to_datetime {
                Some(ms) => cluster.list_offsets(topic, partitions, ms)?,
                None => BTreeMap::new(),
            };
            for &partition in partitions {
                let log_start = earliest.get(&partition).copied().flatten().unwrap_or(0);
                let log_end = latest.get(&partition).copied().flatten().unwrap_or(0);
                let current = committed.get(&(topic.clone(), partition)).copied();
                let offset = new_offset(
                    &args.target,
                    log_start,
                    log_end,
                    current,
                    by_time.get(&partition).copied().flatten(),
                    &format!("{topic}-{partition}"),
                )?;
                new_offsets.insert((topic.clone(), partition), offset);
            }
        }
        if args.execute {
            commit(c, group_id, &new_offsets)?;
        }
        Ok(new_offsets)
    })
}

/// Where `target` puts one partition whose log spans
/// `[log_start, log_end)`, given its committed offset and (for
/// `--to-datetime`) the offset ListOffsets found for the time. Explicit
/// and shifted offsets are kept inside the log, as Kafka's tool does.
/// `label` names the partition in errors.
fn new_offset(
    target: &ResetTarget,
    log_start: i64,
    log_end: i64,
    committed: Option<i64>,
    at_time: Option<i64>,
    label: &str,
) -> anyhow::Result<i64> {
    let clamp = |offset: i64| offset.clamp(log_start, log_end.max(log_start));
    Ok(if target.to_earliest {
        log_start
    } else if target.to_latest {
        log_end
    } else if let Some(offset) = target.to_offset {
        clamp(offset)
    } else if target.to_datetime.is_some() {
        // No record that recent: the end of the log, as Kafka does.
        at_time.unwrap_or(log_end)
    } else if let Some(shift) = target.shift_by {
        let Some(current) = committed else {
            bail!(
                "Cannot shift offset for partition {label} since there is no current committed offset"
            );
        };
        clamp(current.saturating_add(shift))
    } else {
        bail!("no reset target given")
    })
}

/// Commits `offsets` for `group_id` from outside group management
/// (generation -1, no member id), as Kafka's admin client does.
fn commit(
    c: &mut Coordinator,
    group_id: &str,
    offsets: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<()> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), offset) in offsets {
        topics.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(NO_GENERATION)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = c.conn.send(request)?;
    for topic in &response.topics {
        for p in &topic.partitions {
            check(
                p.error_code,
                None,
                &format!(
                    "committing offsets of group {group_id} for {}-{}",
                    topic.name.0, p.partition_index
                ),
            )?;
        }
    }
    Ok(())
}

/// kafka-consumer-groups.sh `--reset-offsets` output.
fn reset_table(group_id: &str, offsets: &BTreeMap<(String, i32), i64>) -> String {
    let rows: Vec<Vec<String>> = offsets
        .iter()
        .map(|((topic, partition), offset)| {
            vec![
                group_id.to_owned(),
                topic.clone(),
                partition.to_string(),
                offset.to_string(),
            ]
        })
        .collect();
    table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows)
}

/// DeleteGroups for each group at its coordinator; prints Kafka's summary
/// and fails if any group could not be deleted.
fn delete(bootstrap: &str, groups: &[String], out: &mut impl Write) -> anyhow::Result<()> {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for group_id in groups {
        let code = Coordinator::call(bootstrap, group_id, |c| {
            let response = c
                .conn
                .send(DeleteGroupsRequest::default().with_groups_names(vec![group(group_id)]))?;
            let result = response
                .results
                .iter()
                .find(|r| r.group_id.0.as_str() == group_id.as_str())
                .ok_or_else(|| anyhow!("DeleteGroups response does not mention {group_id}"))?;
            // Coordinator errors are retried; any other is this group's answer.
            if matches!(
                result.error_code,
                COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
            ) {
                check(result.error_code, None, &format!("group {group_id}"))?;
            }
            Ok(result.error_code)
        })?;
        if code == 0 {
            deleted.push(group_id.as_str());
        } else {
            failed.push((group_id.as_str(), code));
        }
    }
    write!(out, "{}", delete_summary(&deleted, &failed))?;
    if let Some((_, code)) = failed.first() {
        bail!(KafkaError {
            code: *code,
            message: "deletion of some consumer groups failed".to_owned(),
        });
    }
    Ok(())
}

/// kafka-consumer-groups.sh `--delete` output.
fn delete_summary(deleted: &[&str], failed: &[(&str, i16)]) -> String {
    let quoted = |groups: &[&str]| {
        groups
            .iter()
            .map(|g| format!("'{g}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if failed.is_empty() {
        return format!(
            "Deletion of requested consumer groups ({}) was successful.\n",
            quoted(deleted)
        );
    }
    let mut out = String::from("Deletion of some consumer groups failed:\n");
    for (group_id, code) in failed {
        out.push_str(&format!(
            "* Group '{group_id}' could not be deleted due to: {}\n",
            crate::client::error_name(*code)
        ));
    }
    if !deleted.is_empty() {
        out.push_str(&format!(
            "\nThese consumer groups were deleted successfully: {}\n",
            quoted(deleted)
        ));
    }
    out
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

/// Parses an ISO 8601 date and time as kafka-consumer-groups.sh takes it,
/// `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+HH:MM|-HH:MM|+HHMM|+HH]`, into
/// milliseconds since the epoch. Without a zone the time is local, as in
/// Kafka.
fn parse_datetime_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM|-HH:MM], got {text:?}");
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || !text.is_char_boundary(19)
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let digits = &text[range];
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let local_seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    let seconds = match rest {
        "" => local_to_utc(year, month, day, hour, minute, second).ok_or_else(bad)?,
        "Z" => local_seconds,
        zone => local_seconds - zone_offset_seconds(zone).ok_or_else(bad)?,
    };
    Ok(seconds * 1_000 + millis)
}

/// `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH` as seconds east of UTC.
fn zone_offset_seconds(zone: &str) -> Option<i64> {
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    let colon_ok = match zone.len() {
        6 => zone.as_bytes()[3] == b':',
        3 | 5 => !zone.contains(':'),
        _ => false,
    };
    if !colon_ok || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits.get(..2)?.parse().ok()?;
    let minutes: i64 = match digits.get(2..) {
        Some("") | None => 0,
        Some(m) => m.parse().ok()?,
    };
    (hours <= 18 && minutes <= 59).then_some(sign * (hours * 3_600 + minutes * 60))
}

/// Seconds since the epoch of a local wall-clock time, per the C library's
/// time zone (`TZ`, `/etc/localtime`).
fn local_to_utc(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<i64> {
    // SAFETY: an all-zero `tm` is a valid value; `mktime` only reads and
    // normalizes the struct we own, and reads the process's zone settings.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::try_from(year - 1900).ok()?;
    tm.tm_mon = i32::try_from(month - 1).ok()?;
    tm.tm_mday = i32::try_from(day).ok()?;
    tm.tm_hour = i32::try_from(hour).ok()?;
    tm.tm_min = i32::try_from(minute).ok()?;
    tm.tm_sec = i32::try_from(second).ok()?;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, exclusively borrowed struct.
    let seconds = unsafe { libc::mktime(&mut tm) };
    (seconds != -1).then_some(seconds)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
                    bootstrap: "127.0.0.1:9999".into()
                },
            }
        );
        assert_eq!(
            parse(&["delete", "a", "b"]).unwrap(),
            GroupCommand::Delete {
                groups: vec!["a".into(), "b".into()],
                bootstrap: BootstrapArg {
                    bootstrap: "127.0.0.1:9092".into()
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
