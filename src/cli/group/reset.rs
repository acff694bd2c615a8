//! `shoal group reset-offsets`: the new offset of each partition, shown as a
//! plan or committed with `--execute` (only to a group without members),
//! and the `--to-datetime` parser.

use super::*;

/// Computes (and with `--execute` commits) the new offsets, per
/// (topic, partition).
pub(super) fn reset_offsets(
    args: &ResetOffsetsArgs,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
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
pub(super) fn new_offset(
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
pub(super) fn commit(
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
pub(super) fn reset_table(group_id: &str, offsets: &BTreeMap<(String, i32), i64>) -> String {
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
    table(
        Layout::Spaced,
        &["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        &rows,
    )
}

/// Parses an ISO 8601 date and time as kafka-consumer-groups.sh takes it,
/// `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+HH:MM|-HH:MM|+HHMM|+HH]`, into
/// milliseconds since the epoch. Without a zone the time is local, as in
/// Kafka.
pub(super) fn parse_datetime_ms(text: &str) -> Result<i64, String> {
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
pub(super) fn zone_offset_seconds(zone: &str) -> Option<i64> {
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
pub(super) fn local_to_utc(
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

pub(super) fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub(super) fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub(super) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}
