//! `shoal topic elect-leaders`, the kafka-leader-election.sh of shoal,
//! over ElectLeaders: a preferred or unclean election for one partition,
//! every partition of a topic, or every partition of the cluster
//! (`--all-topic-partitions`, the request's null partition list).
//!
//! Invariant: the output lines are Kafka's tool's; a partition that could
//! not be elected makes the command fail after every line is printed.

use std::io::Write;

use anyhow::{anyhow, bail};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::elect_leaders_response::ReplicaElectionResult;
use kafka_protocol::messages::ElectLeadersRequest;

use super::BootstrapArg;
use crate::client::{check, error_name, topic_name, Connection};

/// How long the controller may take to commit the elections: Kafka's
/// tool's default `--admin.config` request timeout.
const ELECTION_TIMEOUT_MS: i32 = 30_000;
/// Kafka's ELECTION_NOT_NEEDED: the wanted leader already leads.
const ELECTION_NOT_NEEDED: i16 = 84;

/// Kafka's `ElectionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ElectionType {
    /// The first replica of the assignment leads again, if it is in the ISR.
    Preferred,
    /// A leaderless partition gets a leader, outside the ISR if it must.
    Unclean,
}

impl ElectionType {
    fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// `shoal topic elect-leaders`'s options, kafka-leader-election.sh's.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ElectArgs {
    /// The topic whose partitions to elect (all of them without --partition).
    #[arg(long, required_unless_present = "all_topic_partitions")]
    pub topic: Option<String>,
    /// One partition of --topic.
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
    /// Every partition of every topic.
    #[arg(long, conflicts_with_all = ["topic", "partition"])]
    pub all_topic_partitions: bool,
    #[arg(long, value_enum, default_value = "preferred")]
    pub election_type: ElectionType,
    #[command(flatten)]
    pub bootstrap: BootstrapArg,
}

/// Runs the elections and prints Kafka's tool's lines to `out`.
pub fn run(args: &ElectArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut conn = Connection::connect(&args.bootstrap.bootstrap)?;
    let wanted = match (&args.topic, args.partition) {
        (Some(topic), Some(partition)) => Some(vec![(topic.clone(), vec![partition])]),
        (Some(topic), None) => Some(vec![(topic.clone(), partitions_of(&mut conn, topic)?)]),
        (None, _) => None,
    };
    let request = ElectLeadersRequest::default()
        .with_election_type(args.election_type.code())
        .with_topic_partitions(wanted.map(|topics| {
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicPartitions::default()
                        .with_topic(topic_name(&topic))
                        .with_partitions(partitions)
                })
                .collect()
        }))
        .with_timeout_ms(ELECTION_TIMEOUT_MS);
    let response = conn.send(request)?;
    check(response.error_code, None, "leader election")?;
    let lines = outcome_lines(args.election_type, &response.replica_election_results);
    for line in &lines.printed {
        writeln!(out, "{line}")?;
    }
    if lines.failed > 0 {
        bail!("{} replica(s) could not be elected", lines.failed);
    }
    Ok(())
}

/// Every partition of `topic`, from Metadata.
fn partitions_of(conn: &mut Connection, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = conn.metadata(Some(&[topic]))?;
    let found = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .ok_or_else(|| anyhow!("Metadata does not mention topic {topic}"))?;
    check(found.error_code, None, &format!("topic {topic}"))?;
    Ok(found.partitions.iter().map(|p| p.partition_index).collect())
}

/// What the tool prints, and how many partitions failed.
#[derive(Debug, PartialEq, Eq)]
struct OutcomeLines {
    printed: Vec<String>,
    failed: usize,
}

/// Kafka's `LeaderElectionCommand` lines: the elected partitions, those
/// that needed no election, then one line per failure.
fn outcome_lines(election: ElectionType, results: &[ReplicaElectionResult]) -> OutcomeLines {
    let (mut elected, mut not_needed, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for topic in results {
        for partition in &topic.partition_result {
            let name = format!("{}-{}", topic.topic.0, partition.partition_id);
            match partition.error_code {
                0 => elected.push(name),
                ELECTION_NOT_NEEDED => not_needed.push(name),
                code => {
                    let message = partition.error_message.as_deref().unwrap_or_default();
                    failures.push(format!(
                        "Error completing leader election ({}) for partition: {name}: {}: {message}",
                        election.name(),
                        error_name(code)
                    ));
                }
            }
        }
    }
    let mut printed = Vec::new();
    if !elected.is_empty() {
        printed.push(format!(
            "Successfully completed leader election ({}) for partitions {}",
            election.name(),
            elected.join(", ")
        ));
    }
    if !not_needed.is_empty() {
        printed.push(format!(
            "Valid replica already elected for partitions {}",
            not_needed.join(", ")
        ));
    }
    let failed = failures.len();
    printed.extend(failures);
    OutcomeLines { printed, failed }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::elect_leaders_response::PartitionResult;
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    #[test]
    fn the_lines_are_kafkas_tools() {
        let partition = |id, code| {
            PartitionResult::default()
                .with_partition_id(id)
                .with_error_code(code)
                .with_error_message((code == 80).then(|| StrBytes::from_static_str("not in ISR")))
        };
        let results = vec![ReplicaElectionResult::default()
            .with_topic(topic_name("t"))
            .with_partition_result(vec![
                partition(0, 0),
                partition(1, ELECTION_NOT_NEEDED),
                partition(2, 0),
                partition(3, 80),
            ])];
        let lines = outcome_lines(ElectionType::Preferred, &results);
        assert_eq!(
            lines.printed,
            vec![
                "Successfully completed leader election (PREFERRED) for partitions t-0, t-2",
                "Valid replica already elected for partitions t-1",
                "Error completing leader election (PREFERRED) for partition: t-3: PREFERRED_LEADER_NOT_AVAILABLE: not in ISR",
            ]
        );
        assert_eq!(lines.failed, 1);
        assert!(outcome_lines(ElectionType::Unclean, &[]).printed.is_empty());
    }
}
