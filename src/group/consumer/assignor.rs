//! The server-side assignors of consumer-protocol groups (KIP-848), by the
//! names `group.remote.assignor` and `group.consumer.assignors` use:
//! `uniform` (balanced and sticky) and `range` (per topic, contiguous).
//!
//! Invariant: an assignment gives every partition of a subscribed topic to
//! exactly one member subscribed to that topic, and nothing else. Pure
//! functions of their inputs: the same members, topics and previous target
//! always give the same answer.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::config::RANGE_ASSIGNOR;

/// Partitions by topic id.
pub(in crate::group) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// A member as an assignor sees it.
pub(in crate::group) struct AssignorMember<'a> {
    pub member_id: &'a str,
    pub subscribed: &'a BTreeSet<String>,
    /// The member's current target, the starting point for stickiness.
    pub previous: Option<&'a Assignment>,
}

/// Computes the target assignment with the assignor named `name`
/// (`UNIFORM_ASSIGNOR` or `RANGE_ASSIGNOR`; anything else is `uniform`).
/// `topics` maps each subscribed topic that exists to its id and partition
/// count.
pub(in crate::group) fn assign(
    name: &str,
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> BTreeMap<String, Assignment> {
    match name {
        RANGE_ASSIGNOR => range(members, topics),
        _ => uniform(members, topics),
    }
}

/// Per topic, its subscribers sorted by member id split the partitions in
/// contiguous ranges, the first `partitions % subscribers` one larger.
fn range(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|member| (member.member_id.to_string(), Assignment::new()))
        .collect();
    for (name, &(topic_id, partitions)) in topics {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|member| member.subscribed.contains(name))
            .map(|member| member.member_id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        subscribers.sort_unstable();
        let count = subscribers.len() as i32;
        let (quota, extra) = (partitions / count, partitions % count);
        let mut next = 0;
        for (index, member_id) in subscribers.iter().enumerate() {
            let size = quota + i32::from((index as i32) < extra);
            if size > 0 {
                let entry = result.entry(member_id.to_string()).or_default();
                entry.entry(topic_id).or_default().extend(next..next + size);
            }
            next += size;
        }
        debug_assert_eq!(next, partitions);
    }
    result
}

/// Balanced and sticky: each member keeps what it had, up to its fair
/// share; what is left goes, partition by partition, to the subscribed
/// member holding the fewest. With the same subscriptions everywhere the
/// counts differ by at most one.
fn uniform(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for member in members {
        result.insert(member.member_id.to_string(), Assignment::new());
        counts.insert(member.member_id, 0);
    }
    // Every partition of a topic someone subscribes to, in a fixed order.
    let mut unassigned: BTreeSet<(&str, Uuid, i32)> = BTreeSet::new();
    let mut by_id: BTreeMap<Uuid, &str> = BTreeMap::new();
    for (name, &(topic_id, partitions)) in topics {
        if members
            .iter()
            .any(|member| member.subscribed.contains(name))
        {
            by_id.insert(topic_id, name);
            unassigned
                .extend((0..partitions).map(|partition| (name.as_str(), topic_id, partition)));
        }
    }
    if members.is_empty() {
        return result;
    }
    // Keep: previous partitions still subscribed and still there, first up
    // to the floor of the fair share, then one more for as many members as
    // the remainder allows, so that a newcomer is not starved.
    let min_quota = unassigned.len() / members.len();
    let mut extra = unassigned.len() % members.len();
    for round in 0..2 {
        for member in members {
            let Some(previous) = member.previous else {
                continue;
            };
            let kept = previous
                .iter()
                .filter_map(|(topic_id, partitions)| {
                    Some((by_id.get(topic_id).copied()?, topic_id, partitions))
                })
                .filter(|(name, _, _)| member.subscribed.contains(*name))
                .flat_map(|(name, topic_id, partitions)| {
                    partitions
                        .iter()
                        .map(move |partition| (name, *topic_id, *partition))
                });
            for key in kept {
                let count = counts.get_mut(member.member_id).expect("counted above");
                let cap = if round == 0 { min_quota } else { min_quota + 1 };
                if *count >= cap || (round == 1 && extra == 0) {
                    break;
                }
                if !unassigned.remove(&key) {
                    continue;
                }
                *count += 1;
                if round == 1 {
                    extra -= 1;
                }
                give(&mut result, member.member_id, key.1, key.2);
            }
        }
    }
    // Fill: each remaining partition to the least loaded subscriber.
    for (name, topic_id, partition) in unassigned {
        let chosen = members
            .iter()
            .filter(|member| member.subscribed.contains(name))
            .min_by_key(|member| (counts[member.member_id], member.member_id));
        if let Some(member) = chosen {
            *counts.get_mut(member.member_id).expect("counted above") += 1;
            give(&mut result, member.member_id, topic_id, partition);
        }
    }
    result
}

fn give(
    result: &mut BTreeMap<String, Assignment>,
    member_id: &str,
    topic_id: Uuid,
    partition: i32,
) {
    result
        .entry(member_id.to_string())
        .or_default()
        .entry(topic_id)
        .or_default()
        .insert(partition);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UNIFORM_ASSIGNOR;

    fn topics(list: &[(&str, u128, i32)]) -> BTreeMap<String, (Uuid, i32)> {
        list.iter()
            .map(|(name, id, partitions)| (name.to_string(), (Uuid::from_u128(*id), *partitions)))
            .collect()
    }

    fn member<'a>(
        member_id: &'a str,
        subscribed: &'a BTreeSet<String>,
        previous: Option<&'a Assignment>,
    ) -> AssignorMember<'a> {
        AssignorMember {
            member_id,
            subscribed,
            previous,
        }
    }

    fn sizes(result: &BTreeMap<String, Assignment>) -> Vec<usize> {
        result
            .values()
            .map(|assignment| assignment.values().map(BTreeSet::len).sum())
            .collect()
    }

    /// Every partition of `topics` exactly once.
    fn covers_once(result: &BTreeMap<String, Assignment>, topics: &BTreeMap<String, (Uuid, i32)>) {
        let mut seen = BTreeSet::new();
        for assignment in result.values() {
            for (topic_id, partitions) in assignment {
                for partition in partitions {
                    assert!(
                        seen.insert((*topic_id, *partition)),
                        "{topic_id} {partition} twice"
                    );
                }
            }
        }
        let total: i32 = topics.values().map(|(_, partitions)| partitions).sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let all: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let members = [member("m1", &all, None), member("m2", &all, None)];
        let topics = topics(&[("a", 1, 3), ("b", 2, 3)]);
        let result = assign(RANGE_ASSIGNOR, &members, &topics);
        covers_once(&result, &topics);
        let first = &result["m1"];
        assert_eq!(first[&Uuid::from_u128(1)], [0, 1].into());
        assert_eq!(first[&Uuid::from_u128(2)], [0, 1].into());
        assert_eq!(result["m2"][&Uuid::from_u128(1)], [2].into());
    }

    #[test]
    fn uniform_balances_across_topics_and_sticks() {
        let all: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let topics = topics(&[("a", 1, 3), ("b", 2, 3)]);
        let two = [member("m1", &all, None), member("m2", &all, None)];
        let before = assign(UNIFORM_ASSIGNOR, &two, &topics);
        covers_once(&before, &topics);
        assert_eq!(sizes(&before), vec![3, 3]);
        let three = [
            member("m1", &all, before.get("m1")),
            member("m2", &all, before.get("m2")),
            member("m3", &all, None),
        ];
        let after = assign(UNIFORM_ASSIGNOR, &three, &topics);
        covers_once(&after, &topics);
        assert_eq!(sizes(&after), vec![2, 2, 2]);
        for member in ["m1", "m2"] {
            for (topic_id, partitions) in &after[member] {
                assert!(
                    partitions.is_subset(&before[member][topic_id]),
                    "{member} moved"
                );
            }
        }
    }

    #[test]
    fn members_only_get_topics_they_subscribe_to() {
        let only_a: BTreeSet<String> = ["a".to_string()].into();
        let only_b: BTreeSet<String> = ["b".to_string()].into();
        let topics = topics(&[("a", 1, 4), ("b", 2, 2)]);
        let members = [member("m1", &only_a, None), member("m2", &only_b, None)];
        for name in [UNIFORM_ASSIGNOR, RANGE_ASSIGNOR] {
            let result = assign(name, &members, &topics);
            covers_once(&result, &topics);
            assert_eq!(
                result["m1"].keys().collect::<Vec<_>>(),
                [&Uuid::from_u128(1)]
            );
            assert_eq!(
                result["m2"].keys().collect::<Vec<_>>(),
                [&Uuid::from_u128(2)]
            );
        }
    }

    /// Members joining one by one, then leaving one by one, over topics of
    /// every size: every partition once, counts within one of each other,
    /// and a member never loses a partition while it is under its share.
    #[test]
    fn uniform_stays_balanced_as_members_come_and_go() {
        let all: BTreeSet<String> = ["a".to_string()].into();
        let ids: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
        for partitions in 1..20 {
            let topics = topics(&[("a", 1, partitions)]);
            let mut previous: BTreeMap<String, Assignment> = BTreeMap::new();
            let sizes_in = (1..=ids.len()).chain((1..ids.len()).rev());
            for size in sizes_in {
                let members: Vec<AssignorMember<'_>> = ids[..size]
                    .iter()
                    .map(|id| member(id, &all, previous.get(id)))
                    .collect();
                let result = assign(UNIFORM_ASSIGNOR, &members, &topics);
                covers_once(&result, &topics);
                let counts = sizes(&result);
                let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                assert!(
                    max - min <= 1,
                    "{partitions} partitions, {size} members: {counts:?}"
                );
                let floor = partitions as usize / size;
                for (id, assignment) in &result {
                    let Some(before) = previous.get(id) else {
                        continue;
                    };
                    let kept = before
                        .iter()
                        .map(|(topic, set)| {
                            assignment
                                .get(topic)
                                .map_or(0, |now| now.intersection(set).count())
                        })
                        .sum::<usize>();
                    let had: usize = before.values().map(BTreeSet::len).sum();
                    assert!(
                        kept >= had.min(floor),
                        "{id} lost partitions under its share"
                    );
                }
                previous = result;
            }
        }
    }
}
