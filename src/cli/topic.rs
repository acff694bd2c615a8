//! `shoal topic create|list|describe|delete|add-partitions`, the
//! kafka-topics.sh subset, over CreateTopics, Metadata, DescribeConfigs,
//! DeleteTopics and CreatePartitions; `shoal topic alter-config` (the topic
//! part of kafka-configs.sh, over IncrementalAlterConfigs), `shoal topic
//! delete-records` (kafka-delete-records.sh, over DeleteRecords),
//! `shoal topic reassign|reassignments` (kafka-reassign-partitions.sh's
//! --execute, --cancel and --list for one partition, over
//! AlterPartitionReassignments and ListPartitionReassignments) and `shoal
//! topic elect-leaders` (kafka-leader-election.sh, `elect.rs`).
//!
//! Invariant: output lines have the shape of Kafka's tools, so scripts
//! written against Kafka read shoal's output unchanged.

use std::io::Write;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::elect::{self, ElectArgs};
use super::BootstrapArg;
use crate::client::{bootstrap, check, topic_name, unknown_topic, Connection, KafkaError};

/// How long the broker may take to create or delete a topic.
const TOPIC_ADMIN_TIMEOUT_MS: i32 = 30_000;
/// `-1` asks the broker for its default partition count or replication
/// factor, as kafka-topics.sh does when the option is omitted.
const BROKER_DEFAULT: i32 = -1;
/// DescribeConfigs resource type of a topic.
const RESOURCE_TYPE_TOPIC: i8 = 2;
/// DescribeConfigs config source of a value that nobody set.
const CONFIG_SOURCE_DEFAULT: i8 = 5;
/// IncrementalAlterConfigs operations (Kafka's `AlterConfigOp.OpType`).
const CONFIG_OP_SET: i8 = 0;
const CONFIG_OP_DELETE: i8 = 1;

/// `shoal topic ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic's name.
        name: String,
        /// Number of partitions (default: the broker's `num.partitions`).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replicas per partition (default: the broker's
        /// `default.replication.factor`).
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config override, as KEY=VALUE; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// List topic names, one per line, sorted.
    List {
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Describe a topic, its non-default configs and its partitions.
    Describe {
        /// The topic's name.
        name: String,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Delete a topic.
    Delete {
        /// The topic's name.
        name: String,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Change a topic's config overrides (like kafka-configs.sh --alter).
    AlterConfig {
        /// The topic's name.
        name: String,
        /// Set a topic config override, as KEY=VALUE; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_config)]
        set: Vec<(String, String)>,
        /// Remove an override, back to the broker's default; repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Grow a topic to more partitions (like kafka-topics.sh --alter --partitions).
    AddPartitions {
        /// The topic's name.
        name: String,
        /// The partition count wanted, the existing ones included.
        #[arg(long)]
        partitions: i32,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Move a partition's replicas, or cancel its move when no --replicas
    /// are given (like kafka-reassign-partitions.sh --execute / --cancel).
    Reassign {
        /// The topic's name.
        name: String,
        #[arg(long)]
        partition: i32,
        /// The target broker ids, comma-separated, the preferred leader first.
        #[arg(long, value_delimiter = ',')]
        replicas: Vec<i32>,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// The reassignments in progress (like kafka-reassign-partitions.sh --list).
    Reassignments {
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Delete a partition's records below an offset (like kafka-delete-records.sh).
    DeleteRecords {
        /// The topic's name.
        name: String,
        #[arg(long)]
        partition: i32,
        /// The new earliest offset; -1 deletes up to the high watermark.
        #[arg(long, allow_negative_numbers = true)]
        before_offset: i64,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Elect partition leaders: the preferred replica back, or a leader
    /// for a leaderless partition (like kafka-leader-election.sh).
    ElectLeaders(ElectArgs),
}

/// Runs one `shoal topic` command, printing to stdout.
pub fn run_topic(cmd: TopicCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            bootstrap,
        } => {
            let mut conn = Connection::connect(&bootstrap.bootstrap)?;
            create(&mut conn, &name, partitions, replication_factor, &configs)?;
            writeln!(out, "Created topic {name}.")?;
        }
        TopicCommand::List { bootstrap } => {
            let mut conn = Connection::connect(&bootstrap.bootstrap)?;
            for name in list(&mut conn)? {
                writeln!(out, "{name}")?;
            }
        }
        TopicCommand::Describe { name, bootstrap } => {
            let mut conn = Connection::connect(&bootstrap.bootstrap)?;
            let metadata = conn.metadata(Some(&[&name]))?;
            let topic = metadata
                .topics
                .iter()
                .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name.as_str()))
                .ok_or_else(|| anyhow!(unknown_topic(&name)))?;
            check_topic(&name, topic.error_code, None)?;
            let configs = non_default_configs(&mut conn, &name)?;
            write!(out, "{}", describe_lines(&name, topic, &configs))?;
        }
        TopicCommand::Delete { name, bootstrap } => {
            let mut conn = Connection::connect(&bootstrap.bootstrap)?;
            delete(&mut conn, &name)?;
        }
        TopicCommand::AlterConfig {
            name,
            set,
            delete,
            bootstrap,
        } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            let mut conn = Connection::connect(&bootstrap.bootstrap)?;
            alter_config(&mut conn, &name, &set, &delete)?;
            writeln!(out, "Completed updating config for topic {name}.")?;
        }
        TopicCommand::AddPartitions {
            name,
            partitions,
            bootstrap,
        } => {
            let mut conn = Connection::connect(&bootstrap.bootstrap)?;
            add_partitions(&mut conn, &name, partitions)?;
            writeln!(out, "Adding partitions succeeded!")?;
        }
        TopicCommand::Reassign {
            name,
            partition,
            replicas,
            bootstrap,
        } => {
            let mut conn = Connection::connect(&bootstrap.bootstrap)?;
            let target = (!replicas.is_empty()).then_some(replicas);
            let verb = if target.is_some() {
                "started"
            } else {
                "cancelled"
            };
            reassign(&mut conn, &name, partition, target)?;
            writeln!(
                out,
                "Successfully {verb} partition reassignment for {name}-{partition}"
            )?;
        }
        TopicCommand::Reassignments { bootstrap } => {
            let mut conn = Connection::connect(&bootstrap.bootstrap)?;
            let response = conn.send(ListPartitionReassignmentsRequest::default())?;
            check(
                response.error_code,
                response.error_message.as_deref(),
                "partition reassignments",
            )?;
            writeln!(out, "{}", reassignment_lines(&response))?;
        }
        TopicCommand::DeleteRecords {
            name,
            partition,
            before_offset,
            bootstrap: addr,
        } => {
            let mut conn = bootstrap(&addr.bootstrap, &name, partition)?;
            writeln!(out, "Executing records delete operation")?;
            let low_watermark = delete_records(&mut conn, &name, partition, before_offset)?;
            writeln!(out, "Records delete operation completed:")?;
            writeln!(
                out,
                "partition: {name}-{partition}\tlow_watermark: {low_watermark}"
            )?;
        }
        TopicCommand::ElectLeaders(args) => elect::run(&args, &mut out)?,
    }
    out.flush()?;
    Ok(())
}

fn create(
    conn: &mut Connection,
    name: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions.unwrap_or(BROKER_DEFAULT))
        .with_replication_factor(replication_factor.unwrap_or(BROKER_DEFAULT as i16))
        .with_configs(configs);
    let response = conn.send(
        CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(TOPIC_ADMIN_TIMEOUT_MS),
    )?;
    let result = response
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == name)
        .ok_or_else(|| anyhow!("CreateTopics response does not mention topic {name}"))?;
    check_topic(name, result.error_code, result.error_message.as_deref())?;
    Ok(())
}

fn list(conn: &mut Connection) -> anyhow::Result<Vec<String>> {
    let metadata = conn.metadata(None)?;
    let mut names: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    Ok(names)
}

fn delete(conn: &mut Connection, name: &str) -> anyhow::Result<()> {
    let response = conn.send(
        DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(name)])
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(name)))
            ])
            .with_timeout_ms(TOPIC_ADMIN_TIMEOUT_MS),
    )?;
    let result = response
        .responses
        .iter()
        .find(|r| r.name.as_ref().map(|n| n.0.as_str()) == Some(name))
        .ok_or_else(|| anyhow!("DeleteTopics response does not mention topic {name}"))?;
    check_topic(name, result.error_code, result.error_message.as_deref())?;
    Ok(())
}

/// IncrementalAlterConfigs of topic `name`: `set` overrides, `delete`
/// others, in one request.
fn alter_config(
    conn: &mut Connection,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    let op = |key: &str, operation, value: Option<&str>| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(key.to_owned()))
            .with_config_operation(operation)
            .with_value(value.map(|value| StrBytes::from_string(value.to_owned())))
    };
    let configs = set
        .iter()
        .map(|(key, value)| op(key, CONFIG_OP_SET, Some(value)))
        .chain(delete.iter().map(|key| op(key, CONFIG_OP_DELETE, None)))
        .collect();
    let response = conn.send(
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TYPE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configs(configs),
        ]),
    )?;
    let result = response
        .responses
        .iter()
        .find(|r| r.resource_name.as_str() == name)
        .ok_or_else(|| anyhow!("IncrementalAlterConfigs response does not mention topic {name}"))?;
    check_topic(name, result.error_code, result.error_message.as_deref())?;
    Ok(())
}

fn add_partitions(conn: &mut Connection, name: &str, partitions: i32) -> anyhow::Result<()> {
    let response = conn.send(
        CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(partitions)
                .with_assignments(None)])
            .with_timeout_ms(TOPIC_ADMIN_TIMEOUT_MS),
    )?;
    let result = response
        .results
        .iter()
        .find(|r| r.name.0.as_str() == name)
        .ok_or_else(|| anyhow!("CreatePartitions response does not mention topic {name}"))?;
    check_topic(name, result.error_code, result.error_message.as_deref())?;
    Ok(())
}

/// AlterPartitionReassignments of one partition: to `target`, or cancel.
fn reassign(
    conn: &mut Connection,
    name: &str,
    partition: i32,
    target: Option<Vec<i32>>,
) -> anyhow::Result<()> {
    let response = conn.send(
        AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(TOPIC_ADMIN_TIMEOUT_MS)
            .with_topics(vec![ReassignableTopic::default()
                .with_name(topic_name(name))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(partition)
                    .with_replicas(
                        target.map(|ids| ids.into_iter().map(BrokerId).collect()),
                    )])]),
    )?;
    check(
        response.error_code,
        response.error_message.as_deref(),
        "partition reassignment",
    )?;
    let result = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == name)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| anyhow!("the response does not mention {name}-{partition}"))?;
    check(
        result.error_code,
        result.error_message.as_deref(),
        &format!("{name}-{partition}"),
    )?;
    Ok(())
}

/// kafka-reassign-partitions.sh --list's lines.
fn reassignment_lines(response: &ListPartitionReassignmentsResponse) -> String {
    let ids = |label: &str, nodes: &[BrokerId]| match nodes {
        [] => String::new(),
        _ => format!(" {label}: {}.", broker_list(nodes)),
    };
    let mut lines: Vec<(String, i32, String)> = response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| {
                let text = format!(
                    "{}-{}: replicas: {}.{}{}",
                    topic.name.0.as_str(),
                    p.partition_index,
                    broker_list(&p.replicas),
                    ids("adding", &p.adding_replicas),
                    ids("removing", &p.removing_replicas)
                );
                (topic.name.0.to_string(), p.partition_index, text)
            })
        })
        .collect();
    lines.sort();
    if lines.is_empty() {
        return "No partition reassignments found.".to_string();
    }
    let text: Vec<String> = lines.into_iter().map(|(_, _, text)| text).collect();
    format!("Current partition reassignments:\n{}", text.join("\n"))
}

/// DeleteRecords of `partition` below `offset`; returns the new low watermark.
fn delete_records(
    conn: &mut Connection,
    name: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<i64> {
    let response = conn.send(
        DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])])
            .with_timeout_ms(TOPIC_ADMIN_TIMEOUT_MS),
    )?;
    let result = response
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == name)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| anyhow!("DeleteRecords response does not mention {name}-{partition}"))?;
    check(result.error_code, None, &format!("{name}-{partition}"))?;
    Ok(result.low_watermark)
}

/// A topic-level error code as a Kafka error about topic `name`.
fn check_topic(name: &str, code: i16, message: Option<&str>) -> Result<(), KafkaError> {
    check(code, message, &format!("topic {name}"))
}

/// The topic's configs that differ from the defaults, as (name, value).
fn non_default_configs(conn: &mut Connection, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let response = conn.send(DescribeConfigsRequest::default().with_resources(
        vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TYPE_TOPIC)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_configuration_keys(None)],
    ))?;
    let result = response
        .results
        .iter()
        .find(|r| r.resource_name.as_str() == name)
        .context("DescribeConfigs response does not mention the topic")?;
    check_topic(name, result.error_code, result.error_message.as_deref())?;
    Ok(shown_configs(&result.configs))
}

/// Configs kafka-topics.sh would show: everything not at its default,
/// sensitive values hidden, sorted by name.
fn shown_configs(configs: &[DescribeConfigsResourceResult]) -> Vec<(String, String)> {
    let mut shown: Vec<(String, String)> = configs
        .iter()
        .filter(|c| c.config_source != CONFIG_SOURCE_DEFAULT)
        .map(|c| {
            let value = match (&c.value, c.is_sensitive) {
                (Some(value), false) => value.to_string(),
                _ => "null".to_owned(),
            };
            (c.name.to_string(), value)
        })
        .collect();
    shown.sort();
    shown
}

/// kafka-topics.sh `--describe` output for one topic.
fn describe_lines(
    name: &str,
    topic: &MetadataResponseTopic,
    configs: &[(String, String)],
) -> String {
    let mut partitions: Vec<_> = topic.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let replication_factor = partitions.first().map_or(0, |p| p.replica_nodes.len());
    let configs = configs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = format!(
        "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {replication_factor}\tConfigs: {configs}\n",
        kafka_uuid(&topic.topic_id),
        partitions.len(),
    );
    for p in partitions {
        let leader = if p.leader_id.0 < 0 {
            "none".to_owned()
        } else {
            p.leader_id.0.to_string()
        };
        out.push_str(&format!(
            "\tTopic: {name}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\n",
            p.partition_index,
            broker_list(&p.replica_nodes),
            broker_list(&p.isr_nodes),
        ));
    }
    out
}

fn broker_list(brokers: &[BrokerId]) -> String {
    brokers
        .iter()
        .map(|b| b.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A topic id as Kafka prints it: URL-safe base64 of the 16 bytes, no padding.
fn kafka_uuid(id: &uuid::Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Parses `--config KEY=VALUE`.
fn parse_config(arg: &str) -> anyhow::Result<(String, String)> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => bail!("expected KEY=VALUE, got {arg:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kafka_protocol::messages::metadata_response::MetadataResponsePartition;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: TopicCommand,
    }

    fn parse(args: &[&str]) -> TopicCommand {
        Cli::try_parse_from(std::iter::once("topic").chain(args.iter().copied()))
            .unwrap()
            .cmd
    }

    #[test]
    fn create_parses_kafka_style_options() {
        let cmd = parse(&[
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=1000",
            "--config",
            "cleanup.policy=compact",
            "--bootstrap",
            "127.0.0.1:9999",
        ]);
        assert_eq!(
            cmd,
            TopicCommand::Create {
                name: "orders".into(),
                partitions: Some(3),
                replication_factor: Some(1),
                configs: vec![
                    ("retention.ms".into(), "1000".into()),
                    ("cleanup.policy".into(), "compact".into()),
                ],
                bootstrap: BootstrapArg {
                    bootstrap: "127.0.0.1:9999".into(),
                    command_config: None,
                },
            }
        );
        assert_eq!(
            parse(&["list"]),
            TopicCommand::List {
                bootstrap: BootstrapArg {
                    bootstrap: "127.0.0.1:9092".into(),
                    command_config: None,
                }
            }
        );
        assert!(Cli::try_parse_from(["topic", "create", "t", "--config", "novalue"]).is_err());
    }

    #[test]
    fn every_topic_command_takes_a_command_config() {
        let cmd = parse(&["list", "--command-config", "/etc/client.properties"]);
        let TopicCommand::List { bootstrap } = cmd else {
            panic!("{cmd:?}");
        };
        assert_eq!(
            bootstrap.command_config,
            Some(std::path::PathBuf::from("/etc/client.properties"))
        );
    }

    #[test]
    fn admin_commands_parse() {
        let bootstrap = BootstrapArg {
            bootstrap: "127.0.0.1:9092".into(),
            command_config: None,
        };
        assert_eq!(
            parse(&[
                "alter-config",
                "orders",
                "--set",
                "retention.ms=1000",
                "--set",
                "cleanup.policy=compact,delete",
                "--delete",
                "segment.bytes",
            ]),
            TopicCommand::AlterConfig {
                name: "orders".into(),
                set: vec![
                    ("retention.ms".into(), "1000".into()),
                    ("cleanup.policy".into(), "compact,delete".into()),
                ],
                delete: vec!["segment.bytes".into()],
                bootstrap: bootstrap.clone(),
            }
        );
        assert_eq!(
            parse(&["add-partitions", "orders", "--partitions", "6"]),
            TopicCommand::AddPartitions {
                name: "orders".into(),
                partitions: 6,
                bootstrap: bootstrap.clone(),
            }
        );
        assert_eq!(
            parse(&[
                "delete-records",
                "orders",
                "--partition",
                "2",
                "--before-offset",
                "-1"
            ]),
            TopicCommand::DeleteRecords {
                name: "orders".into(),
                partition: 2,
                before_offset: -1,
                bootstrap,
            }
        );
        assert!(Cli::try_parse_from(["topic", "add-partitions", "orders"]).is_err());
        let TopicCommand::ElectLeaders(elect) = parse(&["elect-leaders", "--all-topic-partitions"])
        else {
            panic!("elect-leaders");
        };
        assert_eq!(
            (elect.topic, elect.election_type),
            (None, elect::ElectionType::Preferred)
        );
        let TopicCommand::ElectLeaders(elect) = parse(&[
            "elect-leaders",
            "--topic",
            "orders",
            "--partition",
            "1",
            "--election-type",
            "unclean",
        ]) else {
            panic!("elect-leaders");
        };
        assert_eq!(elect.partition, Some(1));
        assert_eq!(elect.election_type, elect::ElectionType::Unclean);
        for wrong in [
            &["topic", "elect-leaders"][..],
            &[
                "topic",
                "elect-leaders",
                "--partition",
                "1",
                "--all-topic-partitions",
            ],
            &[
                "topic",
                "elect-leaders",
                "--topic",
                "t",
                "--all-topic-partitions",
            ],
        ] {
            assert!(Cli::try_parse_from(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn reassign_parses_and_lists_as_kafka_reassign_partitions() {
        let bootstrap = BootstrapArg {
            bootstrap: "127.0.0.1:9092".into(),
            command_config: None,
        };
        let reassign = |replicas: Vec<i32>| TopicCommand::Reassign {
            name: "orders".into(),
            partition: 1,
            replicas,
            bootstrap: bootstrap.clone(),
        };
        let args = [
            "reassign",
            "orders",
            "--partition",
            "1",
            "--replicas",
            "3,1",
        ];
        assert_eq!(parse(&args), reassign(vec![3, 1]));
        assert_eq!(parse(&args[..4]), reassign(Vec::new()), "a cancel");

        use kafka_protocol::messages::list_partition_reassignments_response::{
            OngoingPartitionReassignment, OngoingTopicReassignment,
        };
        let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
        let partition = |index, replicas: &[i32], adding: &[i32], removing: &[i32]| {
            OngoingPartitionReassignment::default()
                .with_partition_index(index)
                .with_replicas(ids(replicas))
                .with_adding_replicas(ids(adding))
                .with_removing_replicas(ids(removing))
        };
        let mut response = ListPartitionReassignmentsResponse::default();
        assert_eq!(
            reassignment_lines(&response),
            "No partition reassignments found."
        );
        response.topics = vec![OngoingTopicReassignment::default()
            .with_name(topic_name("orders"))
            .with_partitions(vec![
                partition(2, &[1, 2], &[], &[2]),
                partition(0, &[3, 1, 2], &[3], &[2]),
            ])];
        assert_eq!(
            reassignment_lines(&response),
            "Current partition reassignments:\n\
             orders-0: replicas: 3,1,2. adding: 3. removing: 2.\n\
             orders-2: replicas: 1,2. removing: 2."
        );
    }

    #[test]
    fn describe_has_kafka_topics_shape() {
        let partition = |index: i32| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(1))
                .with_replica_nodes(vec![BrokerId(1)])
                .with_isr_nodes(vec![BrokerId(1)])
        };
        let topic = MetadataResponseTopic::default()
            .with_topic_id(uuid::Uuid::from_bytes([0xfb; 16]))
            .with_partitions(vec![partition(1), partition(0)]);
        let configs = vec![
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("retention.ms".to_owned(), "1000".to_owned()),
        ];
        assert_eq!(
            describe_lines("t", &topic, &configs),
            "Topic: t\tTopicId: -_v7-_v7-_v7-_v7-_v7-w\tPartitionCount: 2\tReplicationFactor: 1\t\
             Configs: cleanup.policy=compact,retention.ms=1000\n\
             \tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n\
             \tTopic: t\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\n"
        );
    }

    #[test]
    fn only_non_default_configs_are_shown() {
        let config = |name: &str, value: &str, source: i8| {
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_string(name.to_owned()))
                .with_value(Some(StrBytes::from_string(value.to_owned())))
                .with_config_source(source)
        };
        let configs = vec![
            config("segment.bytes", "1073741824", CONFIG_SOURCE_DEFAULT),
            config("retention.ms", "1000", 1),
            config("cleanup.policy", "compact", 1),
            config("sasl.secret", "hunter2", 1).with_is_sensitive(true),
        ];
        assert_eq!(
            shown_configs(&configs),
            [
                ("cleanup.policy".to_owned(), "compact".to_owned()),
                ("retention.ms".to_owned(), "1000".to_owned()),
                ("sasl.secret".to_owned(), "null".to_owned()),
            ]
        );
    }
}
