//! `shoal group describe`: members, committed offsets and lag of one group,
//! in kafka-consumer-groups.sh's tables.

use super::*;

/// Everything `describe` shows about a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupDescription {
    pub(super) coordinator: String,
    pub(super) state: String,
    pub(super) protocol: String,
    pub(super) members: Vec<MemberDescription>,
    /// One row per partition that is committed or assigned.
    pub(super) partitions: Vec<PartitionRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MemberDescription {
    pub(super) member_id: String,
    pub(super) group_instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) host: String,
    /// (topic, partitions), as the member's assignment lists them.
    pub(super) assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PartitionRow {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) committed: Option<i64>,
    pub(super) log_end: Option<i64>,
    /// Index into `members` of the member the partition is assigned to.
    pub(super) owner: Option<usize>,
}

pub(super) fn describe(bootstrap: &str, group_id: &str) -> anyhow::Result<GroupDescription> {
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
pub(super) fn partition_row<'a>(
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
pub(super) fn log_end_offsets(
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
pub(super) fn describe_group(
    c: &mut Coordinator,
    group_id: &str,
) -> anyhow::Result<DescribedGroup> {
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
pub(super) fn committed_offsets(
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
    pub(super) fn render(&self, group_id: &str) -> String {
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
                Layout::Spaced,
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
            Layout::Spaced,
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
                Layout::Spaced,
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

/// An assignment as `--members --verbose` prints it: `t1(0,1),t2(3)`, or
/// `-` when empty.
pub(super) fn assignment_text(assignment: &[(String, Vec<i32>)]) -> String {
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

/// Decodes a ConsumerProtocolAssignment (every version starts with
/// `version: int16, assigned_partitions: [topic: string, partitions:
/// [int32]]`, then user data, which is ignored). Empty bytes (no
/// assignment yet) are an empty assignment.
pub(super) fn decode_assignment(mut bytes: Bytes) -> anyhow::Result<Vec<(String, Vec<i32>)>> {
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
